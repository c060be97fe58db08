#include "http/errors.hpp"

namespace gcorn::http {

const char* status_line(int status) {
    switch (status) {
        case 400: return "400 Bad Request";
        case 404: return "404 Not Found";
        case 408: return "408 Request Timeout";
        case 413: return "413 Content Too Large";
        case 414: return "414 URI Too Long";
        case 431: return "431 Request Header Fields Too Large";
        case 500: return "500 Internal Server Error";
        case 501: return "501 Not Implemented";
        case 503: return "503 Service Unavailable";
        case 504: return "504 Gateway Timeout";
        case 505: return "505 HTTP Version Not Supported";
        default: return "400 Bad Request";
    }
}

}  // namespace gcorn::http
