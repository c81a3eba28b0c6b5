#include "ticks.h"

#define SYST_CSR  (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR  (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR  (*(volatile uint32_t *)0xE000E018u)
#define SCB_ICSR  (*(volatile uint32_t *)0xE000ED04u)
#define CSR_ENABLE_TICKINT_CPUCLK 7u  /* enable, interrupt on wrap, processor clock */
#define ICSR_PENDSTSET (1u << 26)
#define RELOAD 0x00FFFFFFu

static volatile uint32_t wraps;

void SysTick_Handler(void)
{
    wraps++;
}

void ticks_start(void)
{
    wraps = 0;
    SYST_RVR = RELOAD;
    SYST_CVR = 0;
    SYST_CSR = CSR_ENABLE_TICKINT_CPUCLK;
    /* Writing CVR zeroes it; the first tick reloads it from RVR without counting a wrap.
     * Wait for that reload, so ticks_now() starts from 0 instead of jumping by 2^24. */
    while (SYST_CVR == 0) {
    }
}

void ticks_stop(void)
{
    SYST_CSR = 0;
}

uint64_t ticks_now(void)
{
    /* With interrupts masked, a wrap that happened after the last handler run shows as
     * a pending SysTick: count it here and re-read the counter, which has reloaded. */
    __asm volatile("cpsid i" ::: "memory");
    uint32_t w = wraps;
    uint32_t v = SYST_CVR;
    if (SCB_ICSR & ICSR_PENDSTSET) {
        w++;
        v = SYST_CVR;
    }
    __asm volatile("cpsie i" ::: "memory");
    return ((uint64_t)w << 24) + (RELOAD - v);
}

__attribute__((noinline)) void ticks_spin(uint32_t n)
{
    __asm volatile("1: subs %0, %0, #1\n"
                   "   bne 1b\n"
                   : "+r"(n)
                   :
                   : "cc");
}
