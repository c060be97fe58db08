// The OpenSSL context inside a Python ssl.SSLContext, for Gunicorn's ssl_context server hook (the hook builds the
// context in Python, gcorn's TLS serves with it). No OpenSSL here: worker/ takes the pointer as it is.
#pragma once
#include "py/object.hpp"

struct ssl_ctx_st;

namespace gcorn::py {

// The SSL_CTX that `context` wraps, borrowed: it lives as long as `context` (take a reference of your own with
// SSL_CTX_up_ref). `linked_openssl` is OpenSSL_version_num() of the library the caller links; it must be the one
// Python's ssl module runs on, or the pointer means nothing to the caller's OpenSSL.
// Throws python_error: TypeError unless `context` is an ssl.SSLContext, RuntimeError on an OpenSSL mismatch.
ssl_ctx_st* ssl_context_handle(const object& context, unsigned long linked_openssl);

}  // namespace gcorn::py
