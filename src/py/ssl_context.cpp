#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "py/ssl_context.hpp"

#include <cstdio>
#include <string>

namespace gcorn::py {
namespace {

// CPython's Modules/_ssl.c (3.8 to 3.13): typedef struct { PyObject_HEAD SSL_CTX *ctx; ... } PySSLContext.
// There is no API for the pointer, so its first field is read; ssl.SSLContext subclasses _ssl._SSLContext, so every
// instance starts with this layout (checked below against the type's size as a guard).
struct py_ssl_context {
    PyObject_HEAD
    ssl_ctx_st* ctx;
};

std::string hex(unsigned long v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%lx", v);
    return buf;
}

}  // namespace

ssl_ctx_st* ssl_context_handle(const object& context, unsigned long linked_openssl) {
    auto ssl = import("ssl");
    int is = PyObject_IsInstance(context.ptr(), ssl.attr("SSLContext").ptr());
    if (is < 0) throw python_error();
    if (!is || Py_TYPE(context.ptr())->tp_basicsize < Py_ssize_t(sizeof(py_ssl_context)))
        throw python_error(python_error::kind::type_error,
                           std::string("expected an ssl.SSLContext, not ") + type_name(context));
    // The same library in both (Debian's Python and gcorn share the system libssl3): compared by version, since a
    // Python built against another OpenSSL would hand over a structure the caller's library cannot read.
    auto python_openssl = static_cast<unsigned long>(to_integer(ssl.attr("OPENSSL_VERSION_NUMBER")));
    if (python_openssl != linked_openssl)
        throw python_error(python_error::kind::runtime_error,
                           "Python's ssl module runs on OpenSSL " + hex(python_openssl) + ", gcorn on " +
                               hex(linked_openssl) + ": an ssl.SSLContext cannot be shared between them");
    auto* ctx = reinterpret_cast<py_ssl_context*>(context.ptr())->ctx;
    if (!ctx) throw python_error(python_error::kind::value_error, "the ssl.SSLContext has no OpenSSL context");
    return ctx;
}

}  // namespace gcorn::py
