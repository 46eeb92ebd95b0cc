/*
 * wake_place.c: where does the kernel put a thread it wakes while one CPU is busy and
 * another idle? On the idle CPU (what a processor-sharing or global-queue model assumes),
 * or stacked on the busy one?
 *
 * J computes without pause (or, with a duty below 100%, computes and sleeps in turn). W
 * sleeps on a futex; S sleeps GAP, then wakes W; W notes the CPU it runs on and J's, then
 * computes D microseconds, watching whether it moves to another CPU, and sleeps again.
 * None is pinned. Prints, for each GAP and D: the share of wake-ups that ran on J's CPU,
 * the median wake-up latency, and of the stacked ones the share that moved during D and
 * the median time before they moved.
 *
 * With PREV_ON_J = 1, W runs 5 us on J's CPU (pinned there, then unpinned) before each sleep,
 * so that J's CPU is the one it last ran on.
 *
 * `beside` runs the other question: does the kernel put a thread woken by a computing thread
 * beside its waker (on the waker's CPU) when the thread has been using little CPU, and on the
 * idle CPU only when it has been using much? (A scheduler that packs light threads onto busy
 * CPUs, so as not to wake an idle virtual CPU, would.) J computes without pause and, every
 * GAP, wakes W itself; W computes D microseconds and sleeps again, so that it uses about
 * D / (D + GAP) of a CPU. Prints, for each D and that share, how many wake-ups there were
 * and the share that ran on J's CPU.
 *
 *   cc -O2 -pthread python/wake_place.c -o /tmp/wake_place && /tmp/wake_place [WAKES] [DUTY%] [PREV_ON_J]
 *   /tmp/wake_place beside [SECONDS]
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
#include <string.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static atomic_uint word;
static atomic_int j_cpu = -1;
static atomic_int stop;
static atomic_ulong signalled_at;
static atomic_int w_done;
static int duty = 100;
static int prev_on_j; /* W makes J's CPU its previous CPU before each sleep */

static void *j_thread(void *a) {
    (void)a;
    while (!atomic_load(&stop)) {
        uint64_t t = now_ns();
        uint64_t on = (uint64_t)duty * 10000u; /* of a 1 ms period */
        while (now_ns() < t + on) {
            atomic_store_explicit(&j_cpu, sched_getcpu(), memory_order_relaxed);
        }
        if (duty < 100) {
            atomic_store(&j_cpu, -1);
            struct timespec d = {0, (long)(1000000u - on)};
            nanosleep(&d, NULL);
        }
    }
    return NULL;
}

struct sample {
    double lat_us;
    int stacked;     /* ran first on J's CPU */
    int moved;       /* left that CPU during D */
    double moved_us; /* after how long */
};

static double d_us;
static struct sample *out;
static int n_out, cap_out;

static void *w_thread(void *a) {
    (void)a;
    cpu_set_t all;
    sched_getaffinity(0, sizeof all, &all);
    for (;;) {
        if (prev_on_j) {
            int jc = atomic_load(&j_cpu);
            if (jc >= 0) {
                cpu_set_t one;
                CPU_ZERO(&one);
                CPU_SET(jc, &one);
                sched_setaffinity(0, sizeof one, &one);
                uint64_t t = now_ns();
                while (now_ns() < t + 5000) {
                }
                sched_setaffinity(0, sizeof all, &all);
            }
        }
        unsigned v = atomic_load(&word);
        while (atomic_load(&word) == v && !atomic_load(&stop)) {
            syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
        }
        if (atomic_load(&stop)) return NULL;
        uint64_t t0 = now_ns();
        int c0 = sched_getcpu();
        int jc = atomic_load(&j_cpu);
        struct sample s = {(double)(t0 - atomic_load(&signalled_at)) / 1e3, c0 == jc, 0, 0};
        while (now_ns() < t0 + (uint64_t)(d_us * 1e3)) {
            int c = sched_getcpu();
            if (c != c0 && !s.moved) {
                s.moved = 1;
                s.moved_us = (double)(now_ns() - t0) / 1e3;
            }
        }
        if (n_out < cap_out) out[n_out++] = s;
        atomic_store(&w_done, 1);
    }
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n) {
    if (n == 0) return 0.0 / 0.0;
    qsort(v, (size_t)n, sizeof *v, cmp);
    return v[n / 2];
}

/* beside: W's share of wake-ups on J's CPU, and whether W is still computing. */
static atomic_int w_busy;
static atomic_long beside, apart;

static void *beside_w_thread(void *a) {
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

static int beside_main(double secs) {
    double ds[] = {20, 100, 500, 2000};
    double shares[] = {0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5};
    pthread_t w;
    pthread_create(&w, NULL, beside_w_thread, NULL);
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

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "beside") == 0) return beside_main(argc > 2 ? atof(argv[2]) : 2.0);
    int wakes = argc > 1 ? atoi(argv[1]) : 200;
    duty = argc > 2 ? atoi(argv[2]) : 100;
    prev_on_j = argc > 3 ? atoi(argv[3]) : 0;
    double gaps_ms[] = {0.05, 0.5, 5, 50};
    double ds_us[] = {50, 2000, 20000};
    pthread_t j, w;
    out = calloc((size_t)wakes, sizeof *out);
    cap_out = wakes;
    pthread_create(&j, NULL, j_thread, NULL);
    pthread_create(&w, NULL, w_thread, NULL);
    usleep(200000);
    printf("J computes %d%% of the time; %d wake-ups a row; W's previous CPU %s\n", duty, wakes,
           prev_on_j ? "J's (W ran there just before it slept)" : "wherever it ran");
    printf("%8s %8s %9s %12s %9s %12s\n", "gap ms", "D us", "stacked", "latency us", "moved", "moved at us");
    for (size_t gi = 0; gi < sizeof gaps_ms / sizeof *gaps_ms; gi++) {
        for (size_t di = 0; di < sizeof ds_us / sizeof *ds_us; di++) {
            d_us = ds_us[di];
            n_out = 0;
            int n = gaps_ms[gi] >= 50 || ds_us[di] >= 20000 ? wakes / 4 : wakes;
            for (int i = 0; i < n; i++) {
                struct timespec g = {0, (long)(gaps_ms[gi] * 1e6)};
                if (gaps_ms[gi] >= 1000) g.tv_sec = (time_t)(gaps_ms[gi] / 1000);
                nanosleep(&g, NULL);
                atomic_store(&w_done, 0);
                atomic_store(&signalled_at, now_ns());
                atomic_fetch_add(&word, 1);
                syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
                uint64_t t = now_ns();
                while (!atomic_load(&w_done) && now_ns() < t + 100000000u) {
                    struct timespec p = {0, 20000};
                    nanosleep(&p, NULL);
                }
            }
            double lat[n_out], mv[n_out];
            int st = 0, moved = 0, nmv = 0;
            for (int i = 0; i < n_out; i++) {
                lat[i] = out[i].lat_us;
                if (out[i].stacked) {
                    st++;
                    if (out[i].moved) {
                        moved++;
                        mv[nmv++] = out[i].moved_us;
                    }
                }
            }
            printf("%8.2f %8.0f %8.0f%% %12.1f %8.0f%% %12.1f\n", gaps_ms[gi], d_us,
                   100.0 * st / (n_out ? n_out : 1), median(lat, n_out),
                   st ? 100.0 * moved / st : 0.0, median(mv, nmv));
            fflush(stdout);
        }
    }
    atomic_store(&stop, 1);
    atomic_fetch_add(&word, 1);
    syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    pthread_join(w, NULL);
    pthread_join(j, NULL);
    return 0;
}
