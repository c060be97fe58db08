// ASCII case folding for protocol text (field names, codings, tokens): header-only, usable by every layer.
// <cctype> is not used because it depends on the locale, which Python sets at start-up.
#pragma once
#include <algorithm>
#include <string_view>

namespace gcorn::ascii {

constexpr char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? char(c | 0x20) : c; }
constexpr char upper(char c) noexcept { return c >= 'a' && c <= 'z' ? char(c & ~0x20) : c; }

constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

// Without leading and trailing SP and HTAB (RFC 9110 §5.6.3 optional whitespace).
constexpr std::string_view trim(std::string_view v) noexcept {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
}

}  // namespace gcorn::ascii
