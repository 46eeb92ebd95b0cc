/*
 * wake_preempt.c: does a thread woken onto a busy CPU preempt the thread running there at
 * once, or wait for that thread's slice (EEVDF's run-to-parity protects a thread for a while
 * after it is picked)? Measured by how long the running thread has run since it last woke.
 *
 * CPU 1 runs S: sleep 20 us, then spin 6 ms, over and over. W, also on CPU 1, waits on a
 * futex. A waker on CPU 0 wakes W a random time X (0-5 ms) after S last resumed, and W notes
 * when it runs. Prints, by X, the share of wake-ups that ran within 100 us and the median
 * and p90 latency.
 *
 *   cc -O2 -pthread python/wake_preempt.c -o /tmp/wake_preempt && /tmp/wake_preempt [ROUNDS]
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
static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}
static atomic_uint word;
static atomic_ulong resumed_at, signalled_at, ran_at;
static atomic_int stop;
static double spin_ms = 6.0;

static void *s_thread(void *a) {
    (void)a;
    pin(1);
    while (!atomic_load(&stop)) {
        struct timespec d = {0, 20000};
        nanosleep(&d, NULL);
        uint64_t t = now_ns();
        atomic_store(&resumed_at, t);
        while (now_ns() < t + (uint64_t)(spin_ms * 1e6) && !atomic_load(&stop)) {
        }
    }
    return NULL;
}
static void *w_thread(void *a) {
    (void)a;
    pin(1);
    while (!atomic_load(&stop)) {
        unsigned v = atomic_load(&word);
        syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
        atomic_store(&ran_at, now_ns());
    }
    return NULL;
}

#define BINS 10
static const double BOUNDS_MS[BINS - 1] = {0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0};
static double lat[BINS][4000];
static int nlat[BINS];

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 1500;
    pin(0);
    pthread_t s, w;
    pthread_create(&s, NULL, s_thread, NULL);
    pthread_create(&w, NULL, w_thread, NULL);
    srand(1);
    struct timespec settle = {0, 50000000};
    nanosleep(&settle, NULL);
    for (int i = 0; i < rounds; i++) {
        double x_ms = (double)rand() / RAND_MAX * 5.0;
        uint64_t last = atomic_load(&resumed_at);
        while (atomic_load(&resumed_at) == last) {
        }
        uint64_t r = atomic_load(&resumed_at);
        while (now_ns() < r + (uint64_t)(x_ms * 1e6)) {
        }
        uint64_t before = atomic_load(&ran_at);
        uint64_t t = now_ns();
        atomic_store(&signalled_at, t);
        atomic_fetch_add(&word, 1);
        syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
        while (atomic_load(&ran_at) == before) {
        }
        double l = (double)(atomic_load(&ran_at) - t) / 1e3;
        double x = (double)(t - r) / 1e6;
        int b = 0;
        while (b < BINS - 1 && x >= BOUNDS_MS[b]) b++;
        if (nlat[b] < 4000) lat[b][nlat[b]++] = l;
    }
    atomic_store(&stop, 1);
    atomic_fetch_add(&word, 1);
    syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    pthread_join(s, NULL);
    pthread_join(w, NULL);
    printf("S spins %.1f ms after each 20 us sleep; W woken X after S resumed, on S's CPU\n", spin_ms);
    printf("%-12s %6s %12s %12s %12s\n", "X ms", "n", "ran <100us", "median us", "p90 us");
    for (int b = 0; b < BINS; b++) {
        if (!nlat[b]) continue;
        qsort(lat[b], (size_t)nlat[b], sizeof(double), cmp);
        int fast = 0;
        for (int i = 0; i < nlat[b]; i++) fast += lat[b][i] < 100.0;
        printf("%5.2f-%-6.2f %6d %12.2f %12.1f %12.1f\n", b ? BOUNDS_MS[b - 1] : 0.0,
               b < BINS - 1 ? BOUNDS_MS[b] : 99.0, nlat[b], (double)fast / nlat[b],
               lat[b][nlat[b] / 2], lat[b][nlat[b] * 9 / 10]);
    }
    return 0;
}
