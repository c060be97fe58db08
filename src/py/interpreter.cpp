#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "py/interpreter.hpp"

#include <climits>
#include <stdexcept>
#include <string>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "gcorn_build_config.hpp"
#include "py/object.hpp"

namespace gcorn::py {

PyObject* init_gcorn_module();  // module.cpp

std::string gcorn_python_dir() {
    // A binary inside a meson build tree (in the source tree or not: `meson setup /tmp/build`) uses the
    // source tree's package, so gcorn runs without installing. A build tree is recognised by the
    // `meson-private` directory at its root, a few levels above the binary (build/src/gcorn).
    char exe[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0 && ::access(GCORN_PYTHONDIR_BUILD "/gcorn/__init__.py", R_OK) == 0) {
        std::string dir(exe, size_t(n));
        for (int up = 0; up < 4 && dir.size() > 1; ++up) {
            dir.erase(dir.rfind('/'));
            if (::access((dir + "/meson-private").c_str(), F_OK) == 0) return GCORN_PYTHONDIR_BUILD;
        }
    }
    return GCORN_PYTHONDIR_INSTALL;
}

namespace {

// Starts the interpreter gcorn was built against, whatever python3 comes first on PATH: its home and executable
// are set explicitly (left to itself, an embedded CPython finds its home from the first python3 on PATH and may
// load another version's standard library). No Python signal handlers (DESIGN §3.1 (9)).
void initialize() {
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0;
    config.parse_argv = 0;
    PyStatus status = PyConfig_SetBytesString(&config, &config.home, GCORN_PYTHON_HOME);
    if (!PyStatus_Exception(status))
        status = PyConfig_SetBytesString(&config, &config.program_name, GCORN_PYTHON_EXECUTABLE);
    if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status))
        throw std::runtime_error(std::string("cannot start Python " GCORN_PYTHON_VERSION ": ") +
                                 (status.err_msg ? status.err_msg : "unknown error"));
}

}  // namespace

interpreter::interpreter(const std::vector<std::string>& paths) {
    if (PyImport_AppendInittab("_gcorn", init_gcorn_module) < 0) throw std::runtime_error("cannot register _gcorn");
    initialize();
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
