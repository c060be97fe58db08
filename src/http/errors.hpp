// A request HTTP refuses: the status to answer with before closing the connection.
// Plain values; the connection loop turns it into a canned response.
#pragma once
#include <stdexcept>
#include <string>

namespace gcorn::http {

struct http_error : std::runtime_error {
    http_error(int status_code, const std::string& reason) : std::runtime_error(reason), status(status_code) {}
    int status;
};

// "400 Bad Request" etc. for the statuses gcorn generates itself.
const char* status_line(int status);

}  // namespace gcorn::http
