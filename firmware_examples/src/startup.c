/* Minimal Cortex-M startup: vector table, FPU enable, .data/.bss init, main, exit.
 *
 * Written in C so one file serves Armv7-M (M3, M4F, M7) and Armv8-M Mainline (M33).
 * Semihosting (newlib's librdimon, `--specs=rdimon.specs`) carries printf and the exit
 * status to the debugger or to QEMU; on a real board, replace it with your UART retarget. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __data_start[], __data_end[], __data_load[];
extern uint32_t __bss_start[], __bss_end[];

extern int main(void);
extern void initialise_monitor_handles(void);
void SysTick_Handler(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

/* Any unexpected exception ends the run with a failure status instead of hanging:
 * semihosting SYS_EXIT (0x18) with ADP_Stopped_RunTimeErrorUnknown (0x20023), which
 * QEMU turns into exit status 1. The host's timeout is the second line of defence. */
__attribute__((noreturn)) void Default_Handler(void)
{
    for (;;) {
        __asm volatile("mov r0, #0x18\n"
                       "ldr r1, =0x20023\n"
                       "bkpt 0xab\n" ::: "r0", "r1", "memory");
    }
}

/* newlib's exit() runs __libc_fini_array, which calls _fini; without crti.o
 * (-nostartfiles) nothing else provides it. The C code here has no destructors. */
void _init(void);
void _fini(void);
void _init(void) {}
void _fini(void) {}

__attribute__((noreturn)) void Reset_Handler(void)
{
#if defined(__ARM_FP)
    /* CP10 and CP11 full access, before the first floating-point instruction. */
    SCB_CPACR |= (0xFu << 20);
    __asm volatile("dsb\n isb" ::: "memory");
#endif
    for (uint32_t *src = __data_load, *dst = __data_start; dst < __data_end;)
        *dst++ = *src++;
    for (uint32_t *dst = __bss_start; dst < __bss_end;)
        *dst++ = 0;
    initialise_monitor_handles();
    exit(main());
}

/* Cortex-M core exceptions; the boards' peripheral interrupts are not used. Word 0 of
 * the table, the initial main stack pointer, is placed by the linker script (ISO C has
 * no portable cast from a data address to a function pointer). */
__attribute__((section(".vectors"), used)) static void (*const vectors[15])(void) = {
    Reset_Handler,
    Default_Handler, /* NMI */
    Default_Handler, /* HardFault */
    Default_Handler, /* MemManage */
    Default_Handler, /* BusFault */
    Default_Handler, /* UsageFault */
    Default_Handler, /* SecureFault (Armv8-M) */
    0, 0, 0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,
    Default_Handler, /* PendSV */
    SysTick_Handler,
};
