// What the text and the JSON access formats share (log.cpp, access_json.cpp): reading request headers.
// Internal to log/; nothing outside the folder includes it.
#pragma once
#include <string>
#include <string_view>

#include "log/log.hpp"

namespace gcorn::log::detail {

// The first header called `name` (any case), or null when there is none.
const std::string* find_header(const header_list* h, std::string_view name);

// The user of Basic credentials, as Gunicorn's %(u)s (its _get_user); "" when there are none.
std::string basic_user(const header_list* headers);

}  // namespace gcorn::log::detail
