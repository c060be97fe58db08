// Per-request deadlines (issue 13): --request-timeout, and environ["gcorn.deadline"](seconds) from the app.
// A request that outlives its deadline gets gcorn.RequestTimeout raised inside it and, if no response was
// started, a 504; the worker and its other requests live on. How the exception gets in differs by class:
//   async        the hub throws it into the request's greenlet at its next wait (hub::throw_later);
//   sync/gthread a watchdog thread answers 504 on the socket at once, then raises it asynchronously in the
//                thread running the app (PyThreadState_SetAsyncExc), at its next bytecode; under sync (the main
//                thread) a signal also interrupts a sleep or a blocking call, so that comes promptly.
// An app that swallows the exception is cut off at the worker timeout, as before.
#pragma once
#include <atomic>
#include <chrono>
#include <memory>

#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <pthread.h>
#include <set>
#include <string>
#include <thread>

namespace gcorn::worker {

// One request's deadline, in its connection (never on a greenlet's stack: the watchdog reads it).
struct request_clock {
    std::atomic<bool> claimed{false};  // the response head: the app's writer or the deadline's 504, whoever is first
    int64_t deadline_ns = 0;           // CLOCK_MONOTONIC; 0: none
    uint64_t throw_id = 0;             // async: the hub's pending throw
    uint64_t arm_id = 0;               // sync/gthread: which arming the watchdog fires
    bool fired = false;
    // async: the armed list, and the job to raise into
    request_clock *prev = nullptr, *next = nullptr;
    bool linked = false;
    uint64_t token = 0;
    // sync/gthread: where the app runs and how to answer for it
    unsigned long py_thread = 0;
    pthread_t thread{};
    int fd = -1;
    bool plain = true;                 // not TLS: the watchdog may write the 504 itself
    std::string line;                  // "GET /path", for the log
};

class deadline_keeper {
public:
    virtual ~deadline_keeper() = default;
    // On the thread (or greenlet) serving the request, GIL held. arm() again moves the deadline.
    virtual void arm(request_clock& c, int64_t deadline_ns) = 0;
    virtual void disarm(request_clock& c) = 0;
};

// async: armed requests sit in a list (no allocation, no syscall per request); a timer on the hub checks it
// every `period` and has the hub raise the exception in an expired request's greenlet at its next wait.
class green_deadlines final : public deadline_keeper {
public:
    // PRECONDITION: on the hub's thread. `period`: how late past its deadline a request may be told.
    explicit green_deadlines(std::chrono::milliseconds period);
    ~green_deadlines() override;
    void arm(request_clock& c, int64_t deadline_ns) override;
    void disarm(request_clock& c) override;

private:
    void tick();
    std::chrono::milliseconds period_;
    request_clock* first_ = nullptr;
    std::unique_ptr<boost::asio::steady_timer> timer_;  // started by the first arm()
};

// sync and gthread: a watchdog thread. PRECONDITION (constructor): the interpreter runs, GIL held, main thread.
class thread_deadlines final : public deadline_keeper {
public:
    explicit thread_deadlines(bool app_on_main_thread);
    ~thread_deadlines() override;  // releases the GIL while the watchdog stops, if held
    void arm(request_clock& c, int64_t deadline_ns) override;
    void disarm(request_clock& c) override;

private:
    void watch();
    void fire(request_clock& c);

    std::mutex m_;
    std::condition_variable wake_;
    std::set<request_clock*> armed_;
    bool done_ = false;
    bool main_thread_;
    uint64_t last_arm_id_ = 0;
    std::thread thread_;
};

}  // namespace gcorn::worker
