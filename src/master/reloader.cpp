#include "master/reloader.hpp"

#include <cerrno>
#include <cstring>
#include <glob.h>
#include <map>
#include <optional>
#include <set>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <spdlog/spdlog.h>

#include "sys/fd.hpp"

namespace gcorn::master {
namespace net = boost::asio;

namespace {

// reload_extra_files may be glob patterns (Gunicorn's validate_list_of_files_or_patterns).
std::vector<std::string> expand(const std::vector<std::string>& patterns) {
    std::vector<std::string> out;
    for (auto& p : patterns) {
        glob_t g{};
        if (::glob(p.c_str(), GLOB_NOCHECK, nullptr, &g) == 0)
            for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
        ::globfree(&g);
    }
    return out;
}

std::string directory_of(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

// The modification time, or -1 for a file that is not there (its appearance is a change too).
int64_t mtime_ns(const std::string& path) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) return -1;
    return int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

}  // namespace

struct reloader::impl {
    std::function<void(const std::string&)> changed;
    sys::unique_fd manifest;
    bool inotify;
    std::set<std::string> files;
    std::map<std::string, int64_t> mtimes;  // poll engine
    std::optional<net::posix::stream_descriptor> events;  // inotify engine
    std::map<int, std::string> dirs;                       // watch descriptor -> directory
    std::set<std::string> watched_dirs;

    impl(net::io_context& ioc, const config::settings& s, std::function<void(const std::string&)> cb)
        : changed(std::move(cb)), inotify(s.reload_engine != "poll") {
        manifest.reset(::memfd_create("gcorn-reload-manifest", MFD_CLOEXEC));
        if (!manifest) throw std::runtime_error(std::string("reload: memfd_create: ") + std::strerror(errno));
        if (inotify) {
            int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
            if (fd < 0) {
                if (s.reload_engine == "inotify")
                    throw std::runtime_error(std::string("reload_engine inotify: ") + std::strerror(errno));
                spdlog::warn("reload: inotify is not available ({}); polling instead", std::strerror(errno));
                inotify = false;
            } else {
                events.emplace(ioc, fd);
                wait_events();
            }
        }
        add(expand(s.reload_extra_files));
    }

    void add(const std::vector<std::string>& paths) {
        for (auto& p : paths) {
            if (p.empty() || !files.insert(p).second) continue;
            if (!inotify) {
                mtimes[p] = mtime_ns(p);
                continue;
            }
            // The directory is watched, not the file: editors save by writing a new file and renaming it.
            auto dir = directory_of(p);
            if (!watched_dirs.insert(dir).second) continue;
            int wd = ::inotify_add_watch(events->native_handle(), dir.c_str(),
                                         IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB);
            if (wd < 0) spdlog::warn("reload: cannot watch {}: {}", dir, std::strerror(errno));
            else dirs[wd] = dir;
        }
    }

    void wait_events() {
        events->async_wait(net::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
            if (ec) return;
            drain();
            wait_events();
        });
    }

    void drain() {
        alignas(inotify_event) char buf[8192];
        for (;;) {
            ssize_t n = ::read(events->native_handle(), buf, sizeof buf);
            if (n <= 0) return;
            for (char* p = buf; p < buf + n;) {
                auto* e = reinterpret_cast<inotify_event*>(p);
                p += sizeof(inotify_event) + e->len;
                auto dir = dirs.find(e->wd);
                if (dir == dirs.end() || e->len == 0) continue;
                auto path = (dir->second == "/" ? "" : dir->second) + "/" + e->name;
                if (!files.count(path)) continue;
                spdlog::debug("reload: {} changed (inotify mask {:#x})", path, e->mask);
                changed(path);
            }
        }
    }

    void read_manifest() {
        ::flock(manifest.get(), LOCK_SH);
        std::string text;
        char buf[65536];
        for (off_t at = 0;;) {
            ssize_t n = ::pread(manifest.get(), buf, sizeof buf, at);
            if (n <= 0) break;
            text.append(buf, size_t(n));
            at += n;
        }
        ::flock(manifest.get(), LOCK_UN);
        std::vector<std::string> paths;
        for (size_t start = 0; start < text.size();) {
            auto end = text.find('\n', start);
            if (end == std::string::npos) end = text.size();
            paths.push_back(text.substr(start, end - start));
            start = end + 1;
        }
        size_t before = files.size();
        add(paths);
        if (files.size() != before) spdlog::debug("reload: watching {} files", files.size());
    }

    void poll() {
        if (inotify) return;
        for (auto& [path, seen] : mtimes) {
            auto now = mtime_ns(path);
            if (now != seen) {
                seen = now;
                changed(path);
            }
        }
    }
};

reloader::reloader(net::io_context& ioc, const config::settings& s, std::function<void(const std::string&)> changed)
    : impl_(std::make_unique<impl>(ioc, s, std::move(changed))) {}

reloader::~reloader() = default;

int reloader::manifest_fd() const { return impl_->manifest.get(); }
void reloader::read_manifest() { impl_->read_manifest(); }
void reloader::poll() { impl_->poll(); }

}  // namespace gcorn::master
