// The embedded interpreter's lifetime: started with Py_InitializeEx(0) (no Python signal handlers,
// DESIGN §3.1 (9)), the `_gcorn` module registered, sys.path set up, finalized on destruction.
#pragma once
#include <string>
#include <vector>

namespace gcorn::py {

class interpreter {
public:
    // `paths` go first on sys.path (chdir, --pythonpath, gcorn's own package dir).
    explicit interpreter(const std::vector<std::string>& paths);
    ~interpreter();
    interpreter(const interpreter&) = delete;
    interpreter& operator=(const interpreter&) = delete;
};

// Around fork(2) in a process that runs Python (preload_app): keeps the interpreter's locks consistent.
void before_fork() noexcept;
void after_fork_parent() noexcept;
void after_fork_child() noexcept;

// Where gcorn's Python package lives: the source tree when running from a build, else the install dir.
std::string gcorn_python_dir();

}  // namespace gcorn::py
