// The `_gcorn` extension module's composition (src/py/extension.cpp): the hub's functions, as in the binary.
#include "hub/loop_functions.hpp"
#include "hub/primitives.hpp"

namespace gcorn::py {
void install_extension_functions() {
    hub::install_primitives();
    hub::install_loop_functions();
}
}  // namespace gcorn::py
