// ASCII case folding for protocol text (field names, codings, tokens): header-only, usable by every layer.
// <cctype> is not used because it depends on the locale, which Python sets at start-up.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
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

// The first byte at or after `from` that is a control character other than HTAB (below 0x20, CR and LF among
// them, or DEL), or s.size(). Bytes from 0x80 are not control characters. Eight bytes at a time: a word is looked
// at byte by byte only if it holds a byte below 0x20 (a tab, or a stopper) or a DEL.
constexpr bool is_control(unsigned char c) noexcept { return (c < 0x20 && c != '\t') || c == 0x7f; }
inline size_t find_control(std::string_view s, size_t from = 0) noexcept {
    constexpr uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u, del = 0x7f * ones;
    size_t i = from, n = s.size();
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        std::memcpy(&x, s.data() + i, 8);
        // Exact as a whole (SWAR "has a byte less than"): no false negative, and a word it flags is rescanned.
        uint64_t below_space = (x - 0x20 * ones) & ~x & highs;
        uint64_t is_del = ((x ^ del) - ones) & ~(x ^ del) & highs;
        if ((below_space | is_del) == 0) continue;
        for (size_t j = i; j < i + 8; ++j)
            if (is_control(s[j])) return j;
    }
    for (; i < n; ++i)
        if (is_control(s[i])) return i;
    return n;
}

}  // namespace gcorn::ascii
