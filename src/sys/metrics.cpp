#include "sys/metrics.hpp"

namespace gcorn::sys::metrics {

size_t method_class(std::string_view method) noexcept {
    for (size_t i = 0; i + 1 < method_names.size(); ++i)
        if (method == method_names[i]) return i;
    return method_names.size() - 1;
}

size_t status_class(int status) noexcept {
    if (status < 100 || status > 599) return status_names.size() - 1;
    return size_t(status / 100 - 1);
}

size_t bucket_of(int64_t ns) noexcept {
    double s = double(ns) / 1e9;
    size_t i = 0;
    while (i < bucket_bounds.size() && s > bucket_bounds[i]) ++i;  // Prometheus buckets are `le`: inclusive
    return i;
}

}  // namespace gcorn::sys::metrics
