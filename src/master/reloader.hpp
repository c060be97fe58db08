// reload (Gunicorn's --reload): the master watches the files the workers imported, and reload_extra_files, and
// says when one changed. The workers list what they imported in the manifest, a memfd they inherit (no path,
// so it works after they drop privileges, and nothing is left behind). Knows nothing of workers or signals.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "config/settings.hpp"

namespace gcorn::master {

class reloader {
public:
    // `changed` is called with the path of a file that changed (several times for one save, perhaps).
    reloader(boost::asio::io_context& ioc, const config::settings& s, std::function<void(const std::string&)> changed);
    ~reloader();

    // The manifest's descriptor, for the workers (sys::worker_args::reload_manifest_fd).
    int manifest_fd() const;
    // A worker has booted: watch what the manifest now lists (files already watched are kept).
    void read_manifest();
    // The poll engine compares modification times here; called on the master's tick.
    void poll();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace gcorn::master
