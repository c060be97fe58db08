// Scoped GIL guards. Blocking waits release the GIL so other Python threads run (DESIGN §2, §3).
#pragma once

struct _ts;

namespace gcorn::py {

// PRECONDITION: the calling thread holds the GIL.
class gil_release {
public:
    gil_release() noexcept;
    ~gil_release();
    gil_release(const gil_release&) = delete;
    gil_release& operator=(const gil_release&) = delete;

private:
    _ts* state_;
};

}  // namespace gcorn::py
