// The byte-level checks of a request head (DESIGN §6): line endings, control characters, obsolete folding,
// the request line's form, field lines' names and the size limits. request_reader splits a head this has passed.
// Pure functions over a buffer; no I/O.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace gcorn::http {

// What header_map does with a field name containing '_' (it would alias '-' in environ: HTTP_X_FORWARDED_FOR).
enum class underscores { drop, refuse, dangerous };

// The settings' values (their defaults live in the settings table only).
struct limits {
    size_t request_line;  // limit_request_line (0: 8190, as Gunicorn)
    size_t fields;        // limit_request_fields (0: 32768, as Gunicorn)
    size_t field_size;    // limit_request_field_size, CRLF included as Gunicorn counts it (0: unlimited)
    underscores header_map = underscores::drop;  // header_map (Gunicorn's default is drop too)
    // Gunicorn's opt-in relaxations (all off by default, as there): each undoes one refusal of DESIGN §6.
    bool strip_header_spaces = false;            // "Name : value" is read as "Name: value"
    bool permit_obsolete_folding = false;        // a line starting with SP/HTAB continues the previous value
    bool permit_unconventional_method = false;   // any token as method (lower case, over 20 characters)
    bool permit_unconventional_version = false;  // any HTTP/D.D (served as 1.0 below 1, as 1.1 above)
    bool casefold_method = false;                // the method is upper-cased after it is checked
    // forwarder_headers: '_' names a trusted front end may set (request_reader::trust_forwarders); not owned.
    const std::vector<std::string>* forwarder_headers = nullptr;
};

// Incremental scan state: resume where the last call stopped instead of rescanning a dripped head.
struct head_scan {
    enum class result { need_more, complete };
    bool request_line_done = false;  // set it before the first call to scan a trailer section (fields only)
    size_t skip = 0;              // leading empty lines (RFC 9112 §2.2 allows a server to ignore them)
    size_t line_start = 0;        // start of the line being scanned
    size_t next = 0;              // first byte not yet looked at
    size_t request_line_end = 0;  // where the request line's CRLF starts, once it is complete
    size_t fields = 0;            // header lines seen
    size_t head_end = 0;          // one past the final CRLF, when complete

    // Throws http_error (400, 414, 431, 505). `buf` always starts at the request's first byte.
    result scan(std::string_view buf, const limits& lim);

private:
    void end_line(std::string_view line, const limits& lim);
};

// RFC 9112 §3: method SP request-target SP HTTP-version. Throws http_error.
void check_request_line(std::string_view line, const limits& lim = {});

// RFC 9110 §7.2: Host = uri-host [ ":" port ] (empty allowed); also CONNECT's authority-form target.
bool is_host_port(std::string_view value);

}  // namespace gcorn::http
