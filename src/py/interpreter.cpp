#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "py/interpreter.hpp"

#include <climits>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "gcorn_build_config.hpp"
#include "py/object.hpp"

namespace gcorn::py {

PyObject* init_gcorn_module();  // module.cpp

std::string gcorn_python_dir() {
    // A binary inside the build tree uses the source tree's package, so gcorn runs without installing.
    char exe[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0 && access(GCORN_PYTHONDIR_BUILD "/gcorn/__init__.py", R_OK) == 0) {
        std::string self(exe, size_t(n));
        std::string src = GCORN_PYTHONDIR_BUILD;
        auto root = src.substr(0, src.rfind('/'));
        if (self.rfind(root + "/", 0) == 0) return src;
    }
    return GCORN_PYTHONDIR_INSTALL;
}

interpreter::interpreter(const std::vector<std::string>& paths) {
    if (PyImport_AppendInittab("_gcorn", init_gcorn_module) < 0) throw std::runtime_error("cannot register _gcorn");
    Py_InitializeEx(0);
    auto sys_path = import("sys").attr("path");
    for (size_t i = paths.size(); i-- > 0;) sys_path.attr("insert")({integer(0), str(paths[i])});
}

void before_fork() noexcept { PyOS_BeforeFork(); }
void after_fork_parent() noexcept { PyOS_AfterFork_Parent(); }
void after_fork_child() noexcept { PyOS_AfterFork_Child(); }

interpreter::~interpreter() {
    if (Py_FinalizeEx() < 0) spdlog::debug("Python finalization reported an error");
}

}  // namespace gcorn::py
