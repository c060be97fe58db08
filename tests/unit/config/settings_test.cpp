#include "config/settings.hpp"

#include <gtest/gtest.h>

namespace gcorn::config {
namespace {

loaded load_args(std::vector<const char*> args) {
    args.insert(args.begin(), "gcorn");
    return load(int(args.size()), args.data());
}

TEST(settings, defaults_match_gunicorn) {
    auto s = load_args({"app:app"}).values;
    EXPECT_EQ(s.workers, 1);
    EXPECT_EQ(s.bind, string_list{"127.0.0.1:8000"});
    EXPECT_EQ(s.timeout, 30);
    EXPECT_EQ(s.keepalive, 2);
    EXPECT_EQ(s.limit_request_line, 4094);
    EXPECT_EQ(s.worker_class, "sync");
}

TEST(settings, cli_overrides_and_repeats) {
    auto s = load_args({"-w", "3", "-b", "unix:/tmp/a", "-b", "0.0.0.0:80", "--pythonpath", "a,b", "app:app"}).values;
    EXPECT_EQ(s.workers, 3);
    EXPECT_EQ(s.bind, (string_list{"unix:/tmp/a", "0.0.0.0:80"}));
    EXPECT_EQ(s.pythonpath, (string_list{"a", "b"}));
}

TEST(settings, bad_value_names_the_setting) {
    try {
        load_args({"-w", "zero", "app:app"});
        FAIL();
    } catch (const config_error& e) {
        EXPECT_NE(std::string(e.what()).find("workers"), std::string::npos);
    }
}

TEST(settings, toml_errors_name_file_line_and_key) {
    settings s;
    try {
        apply_toml(s, "workers = 2\nwrokers = 3\n", "my.toml");
        FAIL();
    } catch (const config_error& e) {
        EXPECT_NE(std::string(e.what()).find("my.toml:2"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("wrokers"), std::string::npos);
    }
    try {
        apply_toml(s, "timeout = \"soon\"\n", "my.toml");
        FAIL();
    } catch (const config_error& e) {
        EXPECT_NE(std::string(e.what()).find("my.toml:1: setting 'timeout'"), std::string::npos) << e.what();
    }
}

TEST(settings, printed_toml_reads_back_unchanged) {
    auto s = load_args({"-w", "4", "-b", "[::1]:9000", "-e", "A=b \"quoted\"", "--umask", "0o22", "app:app"}).values;
    settings back;
    apply_toml(back, to_toml(s), "printed.toml");
    EXPECT_EQ(to_toml(back), to_toml(s));
    EXPECT_EQ(back.workers, 4);
    EXPECT_EQ(back.raw_env, string_list{"A=b \"quoted\""});
    EXPECT_EQ(back.umask_value(), 022);
}

}  // namespace
}  // namespace gcorn::config
