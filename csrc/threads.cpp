// Persistent worker pool: workers spin briefly after a region (back-to-back GEMMs then start without a
// futex wake-up) and then sleep on a condition variable.
#include "threads.h"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif
#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace pyfastnn {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(_M_X64)
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

int default_threads() {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        const int n = CPU_COUNT(&set);
        if (n > 0) return n < max_threads ? n : max_threads;
    }
#endif
    const unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : (n < unsigned(max_threads) ? int(n) : max_threads);
}

std::atomic<int> g_num_threads{0};  // 0 = not yet initialised

// How long an idle worker keeps spinning before it sleeps. Waking a sleeping worker is slow on these VMs (an idle
// vCPU is halted by the host): with 300 µs, a 256x784x512 GEMM after a 10 ms pause took 3.4 ms instead of
// 1.2 ms, and the pause between two epochs of fit (validation, Python) was enough to pay it every epoch. 5 ms
// covers those pauses; the price is at most 5 ms of one core spinning after the last parallel call (OpenBLAS
// spins far longer).
constexpr auto spin_before_sleep = std::chrono::microseconds(5000);

// Oversubscription guard. The regions split work statically and synchronise with barriers, so one team thread
// that the OS does not run makes the whole region wait for it: with two other busy processes on this 2-core VM,
// fit at batch 200 (each GEMM a region) went from 1.1 ms per epoch on one thread to 70 ms on two. So the caller
// measures how long it waited for the others in each region (at the barriers and at the end), minus the wake-up
// of workers that were asleep when the region was posted (waking a halted vCPU costs ~2 ms here, legitimately).
// Waiting more than `stall_ns` and more than a quarter of the region means the CPUs are oversubscribed: regions
// then run on the caller alone for a backoff time that doubles while it persists and halves with each region that
// ran without such a stall. The range, 2 ms .. 16 ms, is short on purpose: a transient load (another library's
// threads spinning down after its last call) must not keep us serial beyond it. Measured: with 10 ms .. 1 s,
// bench_train.py's M at batch 32, timed right after PyTorch's runs, gave 31k samples/s instead of 53-60k; with
// 2 .. 128 ms, bench_gemm.py (which alternates with NumPy, whose OpenBLAS threads spin after each call) gave
// 0.57-0.75x NumPy at n = 512; with 2 .. 16 ms 1.02-1.16x, while bench_oversubscribed.py (two busy processes
// beside) keeps 2 threads within 1.1-1.8x of 1 thread (70x without the guard).
// Another pool in the process: NumPy's OpenBLAS (0.3.31, measured 2026-12-01) keeps its worker runnable for
// ~0.1 s after each call, spinning without sched_yield (strace), so in a loop calling NumPy and pyfastnn in
// turn that worker really holds a CPU through our regions, and one thread is the right choice (guard off:
// pf.gemm right after one NumPy call ran at 23 instead of 37 GFLOP/s, loaded machine). Ending a serial period
// early when /proc/loadavg's runnable count leaves room was built and measured (a quiet A/B against this
// timed backoff): no gain, the loops never went quiet within a period, so it was not kept.
// OPENBLAS_THREAD_TIMEOUT is the user's lever (README).
constexpr std::int64_t stall_ns = 1000000;           // 1 ms
constexpr std::int64_t min_backoff_ns = 2000000;     // 2 ms
constexpr std::int64_t max_backoff_ns = 16000000;    // 16 ms

inline std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

std::atomic<std::int64_t> g_serial_until{0};  // regions run single-threaded until this time (now_ns)
std::atomic<std::int64_t> g_backoff{min_backoff_ns};
std::atomic<std::int64_t> g_stalled_regions{0};  // statistics for thread_stats()
std::atomic<std::int64_t> g_serial_regions{0};

thread_local std::int64_t t_barrier_wait_ns = 0;  // this thread's time spent waiting in spin_barrier::wait

class pool {
public:
    ~pool() = delete;  // never destroyed: see the note at g_pool

    // Returns false (and does nothing) if another caller is using the pool.
    bool try_run(int nthreads, team_fn fn, void* ctx) {
        std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
        if (!busy.owns_lock()) return false;
        grow(nthreads - 1);

        bool was_spinning[max_threads];
        for (int w = 0; w < nthreads - 1; ++w) was_spinning[w] = workers_[w]->spinning.load(std::memory_order_acquire);
        const std::int64_t waited_before = t_barrier_wait_ns;
        const std::int64_t posted = now_ns();

        spin_barrier barrier(nthreads);
        fn_ = fn;
        ctx_ = ctx;
        barrier_ = &barrier;
        active_ = nthreads;
        done_.store(0, std::memory_order_relaxed);
        {
            // Only the workers of this region get a new ticket, so idle ones never read the region parameters
            // (which the next region may overwrite). Bumping under the mutex means a worker that is about to sleep
            // either sees its new ticket in the wait predicate or gets the notify: no lost wake-up.
            std::lock_guard<std::mutex> lk(mutex_);
            for (int w = 0; w < nthreads - 1; ++w) workers_[w]->ticket.fetch_add(1, std::memory_order_release);
        }
        cv_.notify_all();

        fn(ctx, team{0, nthreads, &barrier});
        const std::int64_t own_end = now_ns();

        // Every worker of the region must be done before the parameters (and the barrier on this stack) go away.
        while (done_.load(std::memory_order_acquire) != nthreads - 1) cpu_relax();
        const std::int64_t end = now_ns();
        judge(nthreads - 1, was_spinning, posted, end, (t_barrier_wait_ns - waited_before) + (end - own_end));
        return true;
    }

private:
    struct worker {
        std::atomic<std::uint64_t> ticket{0};
        std::atomic<bool> spinning{false};    // polling for a ticket (not asleep, not working)
        std::atomic<std::int64_t> started{0};  // now_ns() when it began its part of the last region (wake-up cost)
    };

    // See stall_ns. `waited`: the caller's waiting time in the region.
    void judge(int nworkers, const bool* was_spinning, std::int64_t posted, std::int64_t end, std::int64_t waited) {
        std::int64_t wake = 0;  // the longest wake-up of a worker that was asleep
        for (int w = 0; w < nworkers; ++w) {
            if (was_spinning[w]) continue;
            const std::int64_t lag = workers_[w]->started.load(std::memory_order_acquire) - posted;
            if (lag > wake) wake = lag;
        }
        const std::int64_t stalled = waited - wake;
        const std::int64_t backoff = g_backoff.load(std::memory_order_relaxed);
        if (stalled > stall_ns && 4 * stalled > end - posted) {
            g_serial_until.store(end + backoff, std::memory_order_relaxed);
            g_backoff.store(backoff * 2 < max_backoff_ns ? backoff * 2 : max_backoff_ns, std::memory_order_relaxed);
            g_stalled_regions.fetch_add(1, std::memory_order_relaxed);
        } else {
            // Halve rather than reset: one lucky region on a busy machine should not bring back many slow ones.
            g_backoff.store(backoff / 2 > min_backoff_ns ? backoff / 2 : min_backoff_ns, std::memory_order_relaxed);
        }
    }

    void grow(int nworkers) {
        while (int(workers_.size()) < nworkers) {
            workers_.push_back(new worker());  // stable address for the thread; never freed, like the pool
            const int tid = int(workers_.size());
            std::thread(&pool::worker_loop, this, tid, workers_.back()).detach();
        }
    }

    void worker_loop(int tid, worker* self) {
        std::uint64_t seen = 0;
        for (;;) {
            // Spin for a while, then sleep until this worker's next ticket.
            const auto spin_until = std::chrono::steady_clock::now() + spin_before_sleep;
            int polls = 0;
            self->spinning.store(true, std::memory_order_release);
            while (self->ticket.load(std::memory_order_acquire) == seen) {
                cpu_relax();
                if (++polls % 64 == 0 && std::chrono::steady_clock::now() > spin_until) {
                    self->spinning.store(false, std::memory_order_release);
                    std::unique_lock<std::mutex> lk(mutex_);
                    cv_.wait(lk, [&] { return self->ticket.load(std::memory_order_acquire) != seen; });
                }
            }
            self->spinning.store(false, std::memory_order_relaxed);
            self->started.store(now_ns(), std::memory_order_release);
            ++seen;
            fn_(ctx_, team{tid, active_, barrier_});
            done_.fetch_add(1, std::memory_order_acq_rel);
        }
    }

    std::mutex busy_;  // held by the caller that owns the current region
    std::mutex mutex_;
    std::condition_variable cv_;
    std::atomic<int> done_{0};
    // Region parameters: written by the owner before the ticket bumps (release), read by the region's workers
    // after seeing their ticket (acquire).
    team_fn fn_ = nullptr;
    void* ctx_ = nullptr;
    spin_barrier* barrier_ = nullptr;
    int active_ = 0;
    std::vector<worker*> workers_;
};

// The pool is created on first use and deliberately leaked: destroying it at exit would have to join workers
// that may be blocked, and in a forked child its threads do not exist at all. The child handler just forgets it
// (its mutexes may have been copied in a locked state), and the child's first parallel region builds a new one.
std::atomic<pool*> g_pool{nullptr};
std::mutex g_pool_create;

void after_fork_in_child() {
    g_pool.store(nullptr, std::memory_order_relaxed);
    new (&g_pool_create) std::mutex();  // may have been held by another thread of the parent at fork time
}

pool* get_pool() {
    pool* p = g_pool.load(std::memory_order_acquire);
    if (p != nullptr) return p;
    std::lock_guard<std::mutex> lk(g_pool_create);
    p = g_pool.load(std::memory_order_acquire);
    if (p == nullptr) {
        static const bool registered = [] {
#if defined(__unix__) || defined(__APPLE__)
            pthread_atfork(nullptr, nullptr, after_fork_in_child);
#endif
            return true;
        }();
        (void)registered;
        p = new pool();
        g_pool.store(p, std::memory_order_release);
    }
    return p;
}

}  // namespace

void spin_barrier::wait() {
    const int gen = generation_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
        count_.store(0, std::memory_order_relaxed);
        generation_.fetch_add(1, std::memory_order_release);
        return;
    }
    const std::int64_t start = now_ns();
    int polls = 0;
    while (generation_.load(std::memory_order_acquire) == gen) {
        cpu_relax();
        if (++polls % 1024 == 0) std::this_thread::yield();
    }
    t_barrier_wait_ns += now_ns() - start;
}

thread_stats get_thread_stats() {
    return {g_stalled_regions.load(std::memory_order_relaxed), g_serial_regions.load(std::memory_order_relaxed),
            g_backoff.load(std::memory_order_relaxed) / 1000000.0};
}

int get_num_threads() {
    int n = g_num_threads.load(std::memory_order_relaxed);
    if (n == 0) {
        n = default_threads();
        g_num_threads.store(n, std::memory_order_relaxed);
    }
    return n;
}

void set_num_threads(int n) {
    if (n < 1 || n > max_threads)
        throw std::invalid_argument("number of threads must be between 1 and " + std::to_string(max_threads) +
                                    ", got " + std::to_string(n));
    g_num_threads.store(n, std::memory_order_relaxed);
}

void parallel_run(int requested, team_fn fn, void* ctx) {
    if (requested > 1 && now_ns() < g_serial_until.load(std::memory_order_relaxed)) {
        g_serial_regions.fetch_add(1, std::memory_order_relaxed);
        requested = 1;  // the CPUs are oversubscribed: see stall_ns
    }
    if (requested > 1 && get_pool()->try_run(requested, fn, ctx)) return;
    spin_barrier barrier(1);
    fn(ctx, team{0, 1, &barrier});
}

}  // namespace pyfastnn

int pyfastnn_get_num_threads() noexcept { return pyfastnn::get_num_threads(); }

int pyfastnn_set_num_threads(int n) noexcept {
    if (n < 1 || n > pyfastnn::max_threads) return -1;
    pyfastnn::set_num_threads(n);
    return 0;
}
