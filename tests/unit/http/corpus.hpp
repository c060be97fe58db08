// Loads the raw-request corpus (tests/data/requests, format in its README.md): each case's exact bytes and
// its JSON expectation. Include from one translation unit only: it compiles Boost.JSON (header-only) in.
#pragma once
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/json/src.hpp>

namespace gcorn::http::testing {

struct corpus_case {
    std::string name;
    std::string raw;               // the request's bytes
    boost::json::object expected;  // the .json next to it
};

// GoogleTest prints a failing case by its name, not as a byte dump.
inline void PrintTo(const corpus_case& c, std::ostream* os) { *os << c.name; }

inline std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path.string());
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

inline int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    throw std::runtime_error("bad \\x escape");
}

// Real newlines are layout only; \r \n \t \0 \xHH \\ are the bytes (README.md).
inline std::string decode_http(std::string_view text) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '\n' || c == '\r') continue;
        if (c != '\\') {
            out += c;
            continue;
        }
        if (++i == text.size()) throw std::runtime_error("dangling backslash");
        switch (text[i]) {
            case 'r': out += '\r'; break;
            case 'n': out += '\n'; break;
            case 't': out += '\t'; break;
            case '0': out += '\0'; break;
            case '\\': out += '\\'; break;
            case 'x':
                if (i + 2 >= text.size()) throw std::runtime_error("short \\x escape");
                out += char(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
                i += 2;
                break;
            default: throw std::runtime_error(std::string("unknown escape \\") + text[i]);
        }
    }
    return out;
}

// JSON strings are UTF-8; the corpus means latin-1 bytes (U+0000..U+00FF), as environ does (PEP 3333).
inline std::string latin1(boost::json::string_view utf8) {
    std::string out;
    for (size_t i = 0; i < utf8.size(); ++i) {
        auto c = static_cast<unsigned char>(utf8[i]);
        if (c < 0x80) {
            out += char(c);
        } else if ((c & 0xe0) == 0xc0 && c <= 0xc3 && i + 1 < utf8.size()) {
            out += char(((c & 0x1f) << 6) | (static_cast<unsigned char>(utf8[++i]) & 0x3f));
        } else {
            throw std::runtime_error("corpus string is not latin-1");
        }
    }
    return out;
}

// Every case of `kind` ("valid" or "invalid"), sorted by name so test names are stable.
inline std::vector<corpus_case> load_corpus(const std::string& kind) {
    std::vector<corpus_case> cases;
    for (auto& file : std::filesystem::directory_iterator(std::filesystem::path(GCORN_TEST_DATA) / "requests" / kind)) {
        if (file.path().extension() != ".http") continue;
        auto json_path = file.path();
        json_path.replace_extension(".json");
        cases.push_back({file.path().stem().string(), decode_http(read_file(file.path())),
                         boost::json::parse(read_file(json_path)).as_object()});
    }
    std::sort(cases.begin(), cases.end(), [](auto& a, auto& b) { return a.name < b.name; });
    return cases;
}

}  // namespace gcorn::http::testing
