/*
 * wake_gap.c: what waking a thread parked on a condition variable costs, against how long
 * the core it sleeps on has been idle. The signaller (pinned to CPU 0) spins GAP µs after
 * the waiter (pinned to CPU 1) has gone back to sleep, then signals it, and times its own
 * pthread_cond_signal and the waiter's wake-up (signal to running). On a VM whose idle
 * vCPUs halt, a core idle for only a few µs has not halted yet and wakes far more cheaply.
 *
 *   cc -O2 -pthread python/wake_gap.c -o /tmp/wake_gap && /tmp/wake_gap
 *
 * Needs two CPUs (0 and 1) and Linux.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ROUNDS 400

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static uint64_t sent, got;
static int flag, stop;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    return pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

static void *waiter(void *arg) {
    (void)arg;
    pin(1);
    pthread_mutex_lock(&m);
    while (!stop) {
        while (!flag && !stop) pthread_cond_wait(&c, &m);
        got = now_ns();
        flag = 0;
    }
    pthread_mutex_unlock(&m);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void) {
    if (pin(0) != 0) {
        fprintf(stderr, "cannot pin to CPU 0: this needs two CPUs\n");
        return 2;
    }
    pthread_t t;
    pthread_create(&t, NULL, waiter, NULL);
    static const double gaps_us[] = {0, 1, 2, 3, 4, 5, 7, 10, 20, 50, 100, 300};
    for (size_t g = 0; g < sizeof gaps_us / sizeof gaps_us[0]; g++) {
        double lat[ROUNDS], sig[ROUNDS];
        for (int i = 0; i < ROUNDS; i++) {
            uint64_t end = now_ns() + (uint64_t)(gaps_us[g] * 1000.0);
            while (now_ns() < end) {
            }
            pthread_mutex_lock(&m);
            flag = 1;
            sent = now_ns();
            pthread_cond_signal(&c);
            sig[i] = (double)(now_ns() - sent) / 1e3;
            pthread_mutex_unlock(&m);
            /* Spin until the waiter has run (it clears the flag). */
            for (int f = 1; f;) {
                pthread_mutex_lock(&m);
                f = flag;
                pthread_mutex_unlock(&m);
            }
            lat[i] = (double)(got - sent) / 1e3;
        }
        qsort(lat, ROUNDS, sizeof(double), cmp);
        qsort(sig, ROUNDS, sizeof(double), cmp);
        printf("core idle %5.0f us: wake-up p10 %5.1f p50 %5.1f p90 %5.1f us; the signal p10 %5.2f "
               "p50 %5.2f p90 %5.2f us\n",
               gaps_us[g], lat[ROUNDS / 10], lat[ROUNDS / 2], lat[9 * ROUNDS / 10],
               sig[ROUNDS / 10], sig[ROUNDS / 2], sig[9 * ROUNDS / 10]);
    }
    pthread_mutex_lock(&m);
    stop = 1;
    pthread_cond_signal(&c);
    pthread_mutex_unlock(&m);
    pthread_join(t, NULL);
    return 0;
}
