#include "config/tables.hpp"

#include <algorithm>

#include "config/settings.hpp"

namespace gcorn::config {

std::optional<worker_kind> find_worker_class(std::string_view name) {
    for (auto& row : worker_classes)
        if (row.name == name) return row.kind;
    return std::nullopt;
}

worker_kind worker_kind_of(const settings& s) {
    auto kind = find_worker_class(s.worker_class).value_or(worker_kind::sync);  // validated on load
    return kind == worker_kind::sync && s.threads > 1 ? worker_kind::gthread : kind;
}

std::string_view worker_class_name(const settings& s) {
    bool upgraded = worker_kind_of(s) == worker_kind::gthread && s.worker_class != "gthread";
    return upgraded ? "gthread" : std::string_view(s.worker_class);
}

std::optional<hook> find_hook(std::string_view name) {
    for (auto& row : hooks)
        if (row.name == name) return row.id;
    return std::nullopt;
}

std::string_view name_of(hook h) {
    return std::find_if(std::begin(hooks), std::end(hooks), [&](const hook_row& r) { return r.id == h; })->name;
}

}  // namespace gcorn::config
