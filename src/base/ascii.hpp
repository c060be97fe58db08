// ASCII case folding for protocol text (field names, codings, tokens): header-only, usable by every layer.
// <cctype> is not used because it depends on the locale, which Python sets at start-up.
#pragma once
#include <algorithm>
#include <array>
#include <bit>
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

// RFC 9110 §5.6.2 tchar: the letters, the digits and !#$%&'*+-.^_`|~.
inline constexpr auto tchar_table = [] {
    std::array<bool, 256> t{};
    for (int c = '0'; c <= '9'; ++c) t[c] = true;
    for (int c = 'a'; c <= 'z'; ++c) t[c] = t[c - 'a' + 'A'] = true;
    for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[(unsigned char)c] = true;
    return t;
}();
constexpr bool is_tchar(unsigned char c) noexcept { return tchar_table[c]; }

// token = 1*tchar.
constexpr bool is_token(std::string_view s) noexcept {
    unsigned ok = !s.empty();
    for (unsigned char c : s) ok &= tchar_table[c];  // no branch per byte
    return ok;
}

// A token (RFC 9110 §5.6.2) equals `lower` (lower-case letters and '-', of the same size) but for case: OR-ing in
// 0x20 lower-cases a letter and turns no other token character into a letter or '-', so it compares eight bytes at a
// time. PRECONDITION: `token` is a token and token.size() == lower.size().
inline bool token_iequals(std::string_view token, std::string_view lower) noexcept {
    size_t i = 0, n = token.size();
    for (; i + 8 <= n; i += 8) {
        uint64_t a, b;
        std::memcpy(&a, token.data() + i, 8);
        std::memcpy(&b, lower.data() + i, 8);
        if ((a | 0x2020202020202020u) != b) return false;
    }
    for (; i < n; ++i)
        if ((token[i] | 0x20) != lower[i]) return false;
    return true;
}

// Without leading and trailing SP and HTAB (RFC 9110 §5.6.3 optional whitespace).
constexpr std::string_view trim(std::string_view v) noexcept {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
}

// The first byte at or after `from` that is a control character other than HTAB (below 0x20, CR and LF among
// them, or DEL), or s.size(). Bytes from 0x80 are not control characters. Eight bytes at a time (SWAR): in the mask
// of bytes below 0x20 or equal to 0x7f, the lowest set byte is always a true one (a false one needs a borrow from a
// true one below it), so it is the answer unless it is a tab; then the scan goes on after the tab.
constexpr bool is_control(unsigned char c) noexcept { return (c < 0x20 && c != '\t') || c == 0x7f; }
inline size_t find_control(std::string_view s, size_t from = 0) noexcept {
    static_assert(std::endian::native == std::endian::little, "the byte order the mask's lowest byte assumes");
    constexpr uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u, del = 0x7f * ones;
    size_t i = from, n = s.size();
    while (i + 8 <= n) {
        uint64_t x;
        std::memcpy(&x, s.data() + i, 8);  // little-endian: s[i] is the lowest byte
        uint64_t found = ((x - 0x20 * ones) & ~x & highs) | (((x ^ del) - ones) & ~(x ^ del) & highs);
        if (found == 0) {
            i += 8;
            continue;
        }
        size_t at = i + size_t(std::countr_zero(found) >> 3);
        if (s[at] != '\t') return at;
        i = at + 1;
    }
    for (; i < n; ++i)
        if (is_control(s[i])) return i;
    return n;
}

}  // namespace gcorn::ascii
