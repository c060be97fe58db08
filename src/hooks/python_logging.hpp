// Gunicorn's logconfig, logconfig_dict, logconfig_json and syslog: error and access lines through Python's
// logging (gcorn._logging) under Gunicorn's logger names, installed into the log layer (log::forward_to).
#pragma once
#include "config/settings.hpp"

namespace gcorn::hooks {

// If the settings ask for Python's logging, configures it and routes the log layer there; else does nothing.
// PRECONDITION: the interpreter runs, GIL held. Throws py::python_error (e.g. a bad dictConfig).
void install_python_logging(const config::settings& s);

}  // namespace gcorn::hooks
