// Persistent worker pool behind simam_detail::parallel_for (see simam_cpu_pool.h).
#include "simam_cpu_pool.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace simam_detail {
namespace {

struct Task {
    void (*fn)(void*, int64_t);
    void* context;
    int64_t count;
};

class Pool {
public:
    explicit Pool(int workers) {
        for (int i = 0; i < workers; ++i) {
            try {
                std::thread(&Pool::work, this).detach();  // lives as long as the process
            } catch (...) {
                break;  // fewer workers than asked; the caller's thread still takes its share
            }
        }
    }

    // Returns false (nothing run) when another caller is using the pool.
    bool try_run(const Task& task) {
        std::unique_lock<std::mutex> busy(run_mutex_, std::try_to_lock);
        if (!busy.owns_lock()) return false;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            task_ = &task;
            next_.store(0, std::memory_order_relaxed);
            done_ = 0;
            ++generation_;
        }
        wake_.notify_all();
        const int64_t mine = drain(task);
        std::unique_lock<std::mutex> lock(mutex_);
        done_ += mine;
        // Wait for the work, not for every worker: a worker that wakes late finds task_ cleared.
        idle_.wait(lock, [&] { return done_ == task.count && inside_ == 0; });
        task_ = nullptr;
        return true;
    }

private:
    int64_t drain(const Task& task) {
        int64_t mine = 0;
        for (int64_t i = next_.fetch_add(1); i < task.count; i = next_.fetch_add(1), ++mine) task.fn(task.context, i);
        return mine;
    }

    void work() {
        uint64_t seen = 0;
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            wake_.wait(lock, [&] { return generation_ != seen; });
            seen = generation_;
            if (task_ == nullptr) continue;  // woke after that call had finished
            const Task* task = task_;
            ++inside_;
            lock.unlock();
            const int64_t mine = drain(*task);
            lock.lock();
            done_ += mine;
            --inside_;
            if (done_ == task->count && inside_ == 0) idle_.notify_all();
        }
    }

    std::mutex run_mutex_;  // one caller at a time
    std::mutex mutex_;      // guards everything below except next_
    std::condition_variable wake_, idle_;
    const Task* task_ = nullptr;
    uint64_t generation_ = 0;
    int64_t done_ = 0;
    int inside_ = 0;
    std::atomic<int64_t> next_{0};
};

std::atomic<bool> g_forked_child{false};

void mark_forked_child() { g_forked_child.store(true); }

int threads_from_environment() {
    const char* text = std::getenv("SIMAM_NUM_THREADS");
    if (text != nullptr) {
        const long value = std::strtol(text, nullptr, 10);
        if (value >= 1) return static_cast<int>(std::min(value, 1024L));
    }
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

Pool* pool() {
    // Never destroyed: detached workers may still be asleep in it at exit.
    static Pool* const instance = [] {
        pthread_atfork(nullptr, nullptr, mark_forked_child);
        const int workers = pool_threads() - 1;
        if (workers <= 0) return static_cast<Pool*>(nullptr);
        try {
            return new Pool(workers);
        } catch (...) {
            return static_cast<Pool*>(nullptr);
        }
    }();
    return instance;
}

}  // namespace

int pool_threads() {
    static const int threads = threads_from_environment();
    return threads;
}

void parallel_for(int64_t count, void (*task)(void* context, int64_t index), void* context) {
    if (count <= 0) return;
    const Task job{task, context, count};
    if (count > 1 && !g_forked_child.load()) {
        Pool* p = pool();
        if (p != nullptr && p->try_run(job)) return;
    }
    for (int64_t i = 0; i < count; ++i) task(context, i);
}

}  // namespace simam_detail
