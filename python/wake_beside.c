/*
 * wake_beside.c: does the kernel put a thread woken by a computing thread beside its waker
 * (on the waker's CPU) when the thread has been using little CPU, and on the idle CPU only
 * when it has been using much? (A scheduler that packs light threads onto busy CPUs, so as
 * not to wake an idle virtual CPU, would.)
 *
 * J computes without pause and, every GAP, wakes W itself; W computes D microseconds and
 * sleeps again, so that it uses about D / (D + GAP) of a CPU. None is pinned. Prints, for
 * each D and that share, how many wake-ups there were and the share that ran on J's CPU.
 *
 *   cc -O2 -pthread python/wake_beside.c -o /tmp/wake_beside && /tmp/wake_beside [SECONDS]
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static atomic_uint word;
static atomic_int stop, w_busy, j_cpu = -1;
static atomic_long beside, apart;
static double d_us;

static void *w_thread(void *a) {
    (void)a;
    unsigned seen = 0;
    for (;;) {
        while (atomic_load(&word) == seen && !atomic_load(&stop)) {
            syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
        }
        seen = atomic_load(&word);
        if (atomic_load(&stop)) return NULL;
        if (sched_getcpu() == atomic_load(&j_cpu)) {
            atomic_fetch_add(&beside, 1);
        } else {
            atomic_fetch_add(&apart, 1);
        }
        uint64_t t = now_ns();
        while (now_ns() < t + (uint64_t)(d_us * 1e3)) {
        }
        atomic_store(&w_busy, 0);
    }
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    double ds[] = {20, 100, 500, 2000};
    double shares[] = {0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5};
    pthread_t w;
    pthread_create(&w, NULL, w_thread, NULL);
    printf("%8s %8s %8s %8s %8s\n", "W's CPU", "D us", "gap us", "wakes", "beside J");
    for (size_t di = 0; di < sizeof ds / sizeof *ds; di++) {
        for (size_t si = 0; si < sizeof shares / sizeof *shares; si++) {
            d_us = ds[di];
            double gap_us = d_us * (1 - shares[si]) / shares[si];
            atomic_store(&beside, 0);
            atomic_store(&apart, 0);
            uint64_t t0 = now_ns(), next = t0;
            while (now_ns() < t0 + (uint64_t)(secs * 1e9)) {
                atomic_store(&j_cpu, sched_getcpu());
                uint64_t t = now_ns();
                if (t >= next && !atomic_load(&w_busy)) {
                    atomic_store(&w_busy, 1);
                    atomic_fetch_add(&word, 1);
                    syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
                    next = t + (uint64_t)((d_us + gap_us) * 1e3);
                }
            }
            long b = atomic_load(&beside), a = atomic_load(&apart);
            printf("%7.0f%% %8.0f %8.0f %8ld %7.0f%%\n", shares[si] * 100, d_us, gap_us, a + b,
                   100.0 * (double)b / (double)(a + b ? a + b : 1));
            fflush(stdout);
        }
    }
    atomic_store(&stop, 1);
    atomic_fetch_add(&word, 1);
    syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    pthread_join(w, NULL);
    return 0;
}
