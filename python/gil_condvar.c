/*
 * gil_condvar.c: CPython's GIL (take_gil / drop_gil of Python/ceval_gil.c, 3.8-3.13,
 * FORCE_SWITCHING) on either of two condition variables, to tell what the condition
 * variable does to CPython's threads: glibc's pthread_cond_t (what CPython uses), or, built
 * with -DPLAIN, a sequence-counter futex condition variable whose signal never blocks (as
 * in glibc 2.41 and later, musl, and Rust's std).
 *
 * T threads each run, over and over, HELD µs of spinning with the GIL held ("bytecode"),
 * then a release point: drop the GIL, CALL µs of spinning without it ("a NumPy call"), take
 * it back. It prints the segments per second against one thread alone; per segment the
 * process's CPU, its voluntary context switches and the time its threads waited for a CPU;
 * how long the holder's signals took (glibc 2.25 to 2.40 block a signaller in their group
 * switch, __condvar_quiesce_and_switch_g1, until the old group's waiters have woken); and,
 * on the plain condvar, how many signals found a thread asleep to wake. It also times the
 * GIL itself: how long each hold lasts (take to drop), how long it stays free after a drop
 * and who takes it next (the releaser, back from its call, or another thread), and the
 * tenures: how many takes in a row one thread makes before another takes the GIL.
 *
 *   cc -O2 -pthread python/gil_condvar.c -o /tmp/gil_condvar
 *   cc -O2 -pthread -DPLAIN python/gil_condvar.c -o /tmp/gil_condvar_plain
 *   /tmp/gil_condvar T HELD_US CALL_US SECONDS [SWITCHES_FILE]
 *       (8 4.4 1.0 1.5: the grid's H = 82%, K = 1000)
 *
 * With GIL_MUTEX_TIMES=1 in the environment it also times gil->mutex: how long each site
 * holds it (the holder's drop, a take at once, a take after waiting, a waiter's vain check
 * between two waits), how long a thread waits to lock it at a drop and on entering
 * take_gil, and how often such a lock waits over 2 µs.
 *
 * With SWITCHES_FILE it also writes the time of every switch of the GIL (CLOCK_MONOTONIC ns,
 * one a line): python/sched_states.py --long-tenures splits the threads' states by them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define INTERVAL_US 5000L /* sys.getswitchinterval() */
#define LONG_SIGNAL_NS 5000

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t switch_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t switch_cond = PTHREAD_COND_INITIALIZER;
static atomic_int locked, drop_request;
static atomic_ulong switch_number;
static atomic_long last_holder;
static double held_us, call_us;
static long segments_per_thread;
static atomic_long segments, signals, signal_ns, long_signals, long_signal_ns;
/* The holder's signals by how long they took (µs): < 2, 2-5, 5-10, 10-20, 20-40, 40-80, 80+. */
static const double SIGNAL_BOUNDS_US[] = {2, 5, 10, 20, 40, 80};
#define SIGNAL_BUCKETS 7
static atomic_long signal_hist[SIGNAL_BUCKETS];
/* The GIL's own timeline: when it was last taken and dropped, and by whom. Written under
 * gil->mutex (drop) or switch_mutex (take), read under the other: atomics. */
static atomic_ulong taken_at_ns, dropped_at_ns;
static atomic_long dropped_by, holds, held_ns;
/* Free gaps after a drop, by who takes the GIL next: µs < 1.5, 3, 6, 12, 25, 50, 100, more. */
static const double GAP_BOUNDS_US[] = {1.5, 3, 6, 12, 25, 50, 100};
#define GAP_BUCKETS 8
static long gap_n[2], gap_hist[2][GAP_BUCKETS]; /* [0]: the releaser re-took it, [1]: another */
static double gap_ns[2];
/* Tenures (takes in a row by one thread) by length: 1, 2-3, 4-7, ..., 1024 or more. Kept
 * under switch_mutex, where a switch is counted. */
#define TENURE_BUCKETS 11
static long tenure_takes, tenures, tenure_hist[TENURE_BUCKETS], tenure_segments[TENURE_BUCKETS];
static uint64_t tenure_start_ns;
static uint64_t *switch_log; /* the switches' times, when asked for */
static long switch_log_n, switch_log_cap;
/* gil->mutex's holds by site, and the explicit locks' waits (GIL_MUTEX_TIMES=1). */
static int mutex_times;
enum { HOLD_DROP, HOLD_TAKE_AT_ONCE, HOLD_TAKE_AFTER_WAIT, HOLD_VAIN_CHECK, HOLD_SITES };
static const char *HOLD_NAMES[HOLD_SITES] = {"the holder's drop", "a take at once",
                                             "a take after waiting", "a waiter's vain check"};
static atomic_long hold_n[HOLD_SITES], hold_ns[HOLD_SITES], lock_wait_n[2], lock_wait_ns[2];
static atomic_long slow_lock_n[2], slow_lock_ns[2]; /* explicit locks that waited over 2 µs */
static __thread uint64_t mutex_got_at;
static double tenure_ns, long_tenure_ns;
#define LONG_TENURE_NS 1000000.0 /* a tenure this long or longer is long */

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Locks gil->mutex at an explicit call (site 0: the drop, 1: the take), timing the wait. */
static void gil_mutex_lock(pthread_mutex_t *m, int site) {
    if (!mutex_times) {
        pthread_mutex_lock(m);
        return;
    }
    uint64_t t0 = now_ns();
    pthread_mutex_lock(m);
    mutex_got_at = now_ns();
    atomic_fetch_add(&lock_wait_n[site], 1);
    atomic_fetch_add(&lock_wait_ns[site], (long)(mutex_got_at - t0));
    if (mutex_got_at - t0 > 2000) {
        atomic_fetch_add(&slow_lock_n[site], 1);
        atomic_fetch_add(&slow_lock_ns[site], (long)(mutex_got_at - t0));
    }
}

/* Counts the hold that ends now at `site`. */
static void gil_mutex_hold_ends(int site) {
    if (!mutex_times) return;
    atomic_fetch_add(&hold_n[site], 1);
    atomic_fetch_add(&hold_ns[site], (long)(now_ns() - mutex_got_at));
}

static void spin_us(double us) {
    uint64_t end = now_ns() + (uint64_t)(us * 1000.0);
    while (now_ns() < end) {
    }
}

#ifdef PLAIN
/* A signal bumps the sequence and wakes one futex waiter; it never blocks. */
static atomic_uint seq;
static atomic_long woke_one, woke_ns, waits_slept, waits_again, waits_timed_out;
static atomic_int signaller_cpu;
static atomic_long woke_on_signallers_cpu;
static void cond_signal(void) {
    atomic_store(&signaller_cpu, sched_getcpu());
    atomic_fetch_add(&seq, 1);
    uint64_t t0 = now_ns();
    if (syscall(SYS_futex, &seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0) > 0) {
        atomic_fetch_add(&woke_one, 1);
        atomic_fetch_add(&woke_ns, (long)(now_ns() - t0));
    }
}
static int cond_timedwait_interval(void) {
    unsigned v = atomic_load(&seq);
    pthread_mutex_unlock(&mutex);
    struct timespec ts = {INTERVAL_US / 1000000, (INTERVAL_US % 1000000) * 1000};
    long r = syscall(SYS_futex, &seq, FUTEX_WAIT_PRIVATE, v, &ts, NULL, 0);
    int timed_out = r == -1 && errno == ETIMEDOUT;
    atomic_fetch_add(r == 0 ? &waits_slept : timed_out ? &waits_timed_out : &waits_again, 1);
    if (r == 0 && sched_getcpu() == atomic_load(&signaller_cpu)) {
        atomic_fetch_add(&woke_on_signallers_cpu, 1);
    }
    pthread_mutex_lock(&mutex);
    return timed_out;
}
#else
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER; /* CLOCK_REALTIME, as CPython 3.11 */
static void cond_signal(void) { pthread_cond_signal(&cond); }
static int cond_timedwait_interval(void) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    long ns = deadline.tv_nsec + INTERVAL_US * 1000;
    deadline.tv_sec += ns / 1000000000;
    deadline.tv_nsec = ns % 1000000000;
    return pthread_cond_timedwait(&cond, &mutex, &deadline) == ETIMEDOUT;
}
#endif

static void timed_signal(void) {
    uint64_t t0 = now_ns();
    cond_signal();
    long d = (long)(now_ns() - t0);
    atomic_fetch_add(&signals, 1);
    atomic_fetch_add(&signal_ns, d);
    int b = 0;
    while (b < SIGNAL_BUCKETS - 1 && (double)d >= SIGNAL_BOUNDS_US[b] * 1e3) b++;
    atomic_fetch_add(&signal_hist[b], 1);
    if (d > LONG_SIGNAL_NS) {
        atomic_fetch_add(&long_signals, 1);
        atomic_fetch_add(&long_signal_ns, d);
    }
}

static void drop_gil(long me) {
    gil_mutex_lock(&mutex, 0);
    uint64_t t = now_ns();
    atomic_fetch_add(&held_ns, (long)(t - atomic_load(&taken_at_ns)));
    atomic_fetch_add(&holds, 1);
    atomic_store(&dropped_at_ns, t);
    atomic_store(&dropped_by, me);
    atomic_store(&locked, 0);
    timed_signal();
    gil_mutex_hold_ends(HOLD_DROP);
    pthread_mutex_unlock(&mutex);
    if (atomic_load(&drop_request)) {
        /* FORCE_SWITCHING: wait until another thread has taken the GIL. */
        pthread_mutex_lock(&switch_mutex);
        if (atomic_load(&last_holder) == me) {
            atomic_store(&drop_request, 0);
            pthread_cond_wait(&switch_cond, &switch_mutex);
        }
        pthread_mutex_unlock(&switch_mutex);
    }
}

static void take_gil(long me) {
    gil_mutex_lock(&mutex, 1);
    int waited = 0;
    while (atomic_load(&locked)) {
        unsigned long saved = atomic_load(&switch_number);
        if (waited) gil_mutex_hold_ends(HOLD_VAIN_CHECK);
        waited = 1;
        int timed_out = cond_timedwait_interval();
        if (mutex_times) mutex_got_at = now_ns();
        if (timed_out && atomic_load(&locked) && atomic_load(&switch_number) == saved) {
            atomic_store(&drop_request, 1);
        }
    }
    pthread_mutex_lock(&switch_mutex);
    atomic_store(&locked, 1);
    uint64_t t = now_ns();
    atomic_store(&taken_at_ns, t);
    uint64_t dropped = atomic_load(&dropped_at_ns);
    if (dropped) {
        int other = atomic_load(&dropped_by) != me;
        double gap = (double)(t - dropped);
        int b = 0;
        while (b < GAP_BUCKETS - 1 && gap >= GAP_BOUNDS_US[b] * 1e3) b++;
        gap_n[other]++;
        gap_ns[other] += gap;
        gap_hist[other][b]++;
    }
    if (atomic_load(&last_holder) != me) {
        if (tenure_start_ns) {
            int b = 0;
            for (long n = tenure_takes; n > 1 && b < TENURE_BUCKETS - 1; n >>= 1) b++;
            tenure_hist[b]++;
            tenure_segments[b] += tenure_takes;
            tenures++;
            double d = (double)(t - tenure_start_ns);
            tenure_ns += d;
            if (d >= LONG_TENURE_NS) long_tenure_ns += d;
        }
        tenure_start_ns = t;
        tenure_takes = 0;
        if (switch_log_n < switch_log_cap) switch_log[switch_log_n++] = t;
        atomic_store(&last_holder, me);
        atomic_fetch_add(&switch_number, 1);
    }
    tenure_takes++;
    pthread_cond_signal(&switch_cond);
    pthread_mutex_unlock(&switch_mutex);
    atomic_store(&drop_request, 0);
    gil_mutex_hold_ends(waited ? HOLD_TAKE_AFTER_WAIT : HOLD_TAKE_AT_ONCE);
    pthread_mutex_unlock(&mutex);
}

/* This thread's time runnable but waiting for a CPU so far (ns): the second field of
 * /proc/thread-self/schedstat; 0 where the kernel does not expose it. */
static long run_delay_ns(void) {
    FILE *f = fopen("/proc/thread-self/schedstat", "r");
    if (!f) return 0;
    unsigned long long run, wait;
    long r = fscanf(f, "%llu %llu", &run, &wait) == 2 ? (long)wait : 0;
    fclose(f);
    return r;
}

static atomic_long waited_ns;

static void *worker(void *arg) {
    long me = (long)arg;
    take_gil(me);
    for (long i = 0; i < segments_per_thread; i++) {
        spin_us(held_us);
        if (atomic_load(&drop_request)) { /* the eval breaker */
            drop_gil(me);
            take_gil(me);
        }
        drop_gil(me); /* Py_BEGIN_ALLOW_THREADS */
        spin_us(call_us);
        take_gil(me); /* Py_END_ALLOW_THREADS */
        atomic_fetch_add(&segments, 1);
    }
    drop_gil(me);
    atomic_fetch_add(&waited_ns, run_delay_ns());
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: %s THREADS HELD_US CALL_US SECONDS [SWITCHES_FILE]  (e.g. 8 4.4 1.0 1.5)\n",
                argv[0]);
        return 2;
    }
    int threads = atoi(argv[1]);
    held_us = atof(argv[2]);
    call_us = atof(argv[3]);
    double seconds = atof(argv[4]);
    if (threads < 1 || threads > 256 || held_us <= 0 || call_us < 0 || seconds <= 0 || seconds > 60) {
        fprintf(stderr, "THREADS must be 1-256, HELD_US > 0, CALL_US >= 0, SECONDS in (0, 60]\n");
        return 2;
    }
    const char *mt = getenv("GIL_MUTEX_TIMES");
    mutex_times = mt && *mt && *mt != '0';
    FILE *switches_out = NULL;
    if (argc == 6) {
        switches_out = fopen(argv[5], "w");
        switch_log_cap = 4000000;
        switch_log = malloc((size_t)switch_log_cap * sizeof *switch_log);
        if (!switches_out || !switch_log) {
            fprintf(stderr, "cannot write the switches to %s\n", argv[5]);
            return 2;
        }
    }
    double alone = 1e6 / (held_us + call_us);
    segments_per_thread = (long)(seconds * alone / threads);
    pthread_t th[256];
    uint64_t t0 = now_ns();
    for (long i = 0; i < threads; i++) {
        pthread_create(&th[i], NULL, worker, (void *)(i + 1));
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
    }
    double elapsed_ns = (double)(now_ns() - t0);
    double rate = (double)segments / (elapsed_ns / 1e9);
    double delay_ns = (double)waited_ns;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_us = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
                    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    printf("%s T=%d held %.2f us call %.2f us: %.0f segments/s = %.2fx one thread's %.0f; "
           "CPU %.2f us, %.3f voluntary switches and %.2f us waiting for a CPU a segment; "
           "signals: mean %.2f us, %.2f%% over 5 us (mean %.1f us)\n",
#ifdef PLAIN
           "plain", threads, held_us, call_us, rate, rate / alone, alone,
#else
           "glibc", threads, held_us, call_us, rate, rate / alone, alone,
#endif
           cpu_us / (double)segments, (double)ru.ru_nvcsw / (double)segments,
           delay_ns / 1e3 / (double)segments,
           (double)signal_ns / (double)signals / 1e3, 100.0 * (double)long_signals / (double)signals,
           long_signals ? (double)long_signal_ns / (double)long_signals / 1e3 : 0.0);
    printf("  signals a segment taking <2, 2-5, 5-10, 10-20, 20-40, 40-80, 80+ us:");
    for (int b = 0; b < SIGNAL_BUCKETS; b++) printf(" %.4f", (double)signal_hist[b] / (double)segments);
    printf("\n");
#ifdef PLAIN
    printf("  a signal that woke a sleeper took its signaller %.2f us on average; %.0f%% of the "
           "woken ran on the CPU of the latest signal\n",
           woke_one ? (double)woke_ns / (double)woke_one / 1e3 : 0.0,
           waits_slept ? 100.0 * (double)woke_on_signallers_cpu / (double)waits_slept : 0.0);
    printf("  a segment: %.3f signals woke a sleeper; waits: %.3f slept and were woken, %.3f "
           "returned at once (signalled meanwhile), %.4f timed out\n",
           (double)woke_one / (double)segments, (double)waits_slept / (double)segments,
           (double)waits_again / (double)segments, (double)waits_timed_out / (double)segments);
#endif
    double n = (double)segments;
    printf("  the GIL a segment: held %.2f us a hold; free after a drop, re-taken by the releaser "
           "%.3f times (mean %.2f us), taken by another thread %.3f times (mean %.2f us)\n",
           holds ? (double)held_ns / (double)holds / 1e3 : 0.0, (double)gap_n[0] / n,
           gap_n[0] ? gap_ns[0] / (double)gap_n[0] / 1e3 : 0.0, (double)gap_n[1] / n,
           gap_n[1] ? gap_ns[1] / (double)gap_n[1] / 1e3 : 0.0);
    for (int who = 0; who < 2; who++) {
        printf("  free gaps a segment, %s, <1.5, 1.5-3, 3-6, 6-12, 12-25, 25-50, 50-100, 100+ us:",
               who ? "another took it" : "re-taken by the releaser");
        for (int b = 0; b < GAP_BUCKETS; b++) printf(" %.4f", (double)gap_hist[who][b] / n);
        printf("\n");
    }
    long in_tenures = 0;
    for (int b = 0; b < TENURE_BUCKETS; b++) in_tenures += tenure_segments[b];
    printf("  tenures: %ld (%.4f a segment), mean %.1f us, %.2f takes; %.3f of the time in tenures "
           "of 1 ms or more; share of takes in tenures of 1, 2-3, 4-7, 8-15, ..., 512-1023, "
           "1024+ takes:",
           tenures, (double)tenures / n, tenures ? tenure_ns / (double)tenures / 1e3 : 0.0,
           tenures ? (double)in_tenures / (double)tenures : 0.0, long_tenure_ns / elapsed_ns);
    for (int b = 0; b < TENURE_BUCKETS; b++)
        printf(" %.3f", in_tenures ? (double)tenure_segments[b] / (double)in_tenures : 0.0);
    printf("\n");
    if (mutex_times) {
        printf("  gil->mutex a segment: waits to lock it %.3f us at a drop, %.3f us entering take_gil; held",
               lock_wait_n[0] ? (double)lock_wait_ns[0] / (double)lock_wait_n[0] / 1e3 : 0.0,
               lock_wait_n[1] ? (double)lock_wait_ns[1] / (double)lock_wait_n[1] / 1e3 : 0.0);
        for (int k = 0; k < HOLD_SITES; k++)
            printf("%s by %s %.3f times, %.3f us each", k ? ";" : "", HOLD_NAMES[k], (double)hold_n[k] / n,
                   hold_n[k] ? (double)hold_ns[k] / (double)hold_n[k] / 1e3 : 0.0);
        printf("\n  locks of gil->mutex that waited over 2 us, a segment: at a drop %.4f (mean %.1f us), "
               "entering take_gil %.4f (mean %.1f us)\n",
               (double)slow_lock_n[0] / n, slow_lock_n[0] ? (double)slow_lock_ns[0] / (double)slow_lock_n[0] / 1e3 : 0.0,
               (double)slow_lock_n[1] / n, slow_lock_n[1] ? (double)slow_lock_ns[1] / (double)slow_lock_n[1] / 1e3 : 0.0);
    }
    if (switches_out) {
        for (long i = 0; i < switch_log_n; i++) fprintf(switches_out, "%llu\n", (unsigned long long)switch_log[i]);
        if (fclose(switches_out) != 0) {
            fprintf(stderr, "cannot write the switches to %s\n", argv[5]);
            return 1;
        }
        printf("  %ld switches written to %s%s\n", switch_log_n, argv[5],
               switch_log_n == switch_log_cap ? " (the first ones: the log is full)" : "");
    }
    return 0;
}
