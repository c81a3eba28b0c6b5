/* A 64-bit count of SysTick ticks: the 24-bit down-counter clocked from the processor
 * clock, plus an interrupt counting its wraps (every 2^24 ticks). Under QEMU with
 * `-icount shift=0` virtual time advances one nanosecond per instruction, so a tick is
 * a fixed number of instructions (40 on the 25 MHz MPS2 boards); main.c calibrates
 * that number against a loop of known length instead of assuming it. */
#ifndef TICKS_H
#define TICKS_H
#include <stdint.h>

void ticks_start(void);
void ticks_stop(void);
uint64_t ticks_now(void);
/* Runs exactly 2 * n instructions of loop body (subs + bne), for calibration. */
void ticks_spin(uint32_t n);

#endif
