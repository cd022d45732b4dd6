#include <gtest/gtest.h>

#include <sstream>

#include "core/json.hpp"
#include "device/cli/aspisd_cli.hpp"
#include "support/swtpm.hpp"
#include "support/temp_dir.hpp"

namespace aspis::device {
namespace {

using testing::Swtpm;
using testing::TempDir;

struct CliResult {
  int code;
  std::string out;
  std::string err;
};

CliResult Cli(std::vector<std::string> args) {
  std::ostringstream out, err;
  const int code = Main(args, out, err);
  return {code, out.str(), err.str()};
}

std::string DeviceId(const CliResult& r) {
  auto doc = json::Parse(r.out);
  EXPECT_TRUE(doc) << r.out << r.err;
  return doc ? *json::GetString(*doc, "device_id") : "";
}

TEST(AspisdIdentity, SoftwareInitThenShowGiveTheSameIdEveryRun) {
  TempDir dir;
  const std::string state = (dir / "state").string();
  auto init = Cli({"identity", "init", "--rot", "software", "--state", state, "--output", "json"});
  ASSERT_EQ(init.code, 0) << init.err;
  const std::string id = DeviceId(init);
  EXPECT_EQ(id.size(), 64u);
  for (int i = 0; i < 2; ++i) {
    auto show = Cli({"identity", "show", "--state", state, "--output", "json"});
    ASSERT_EQ(show.code, 0) << show.err;
    EXPECT_EQ(DeviceId(show), id);
  }
  auto again = Cli({"identity", "init", "--rot", "software", "--state", state, "--output", "json"});
  EXPECT_EQ(DeviceId(again), id);
  auto table = Cli({"identity", "show", "--state", state});
  EXPECT_NE(table.out.find("Device ID:   " + id), std::string::npos);
  EXPECT_NE(table.out.find("-----BEGIN PUBLIC KEY-----"), std::string::npos);
}

TEST(AspisdIdentity, Tpm2InitThenShowGiveTheSameIdEveryRun) {
  Swtpm swtpm;
  TempDir dir;
  const std::string state = (dir / "state").string();
  auto init = Cli({"identity", "init", "--rot", "tpm2", "--tcti", swtpm.Tcti(), "--state", state,
                   "--output", "json"});
  ASSERT_EQ(init.code, 0) << init.err;
  const std::string id = DeviceId(init);
  auto show = Cli({"identity", "show", "--state", state, "--output", "json"});
  ASSERT_EQ(show.code, 0) << show.err;
  EXPECT_EQ(DeviceId(show), id);
  EXPECT_NE(show.out.find("\"backend\": \"tpm2\""), std::string::npos);
}

TEST(AspisdIdentity, ShowWithoutInitExplainsWhatToRun) {
  TempDir dir;
  auto show = Cli({"identity", "show", "--state", (dir / "none").string()});
  EXPECT_EQ(show.code, 1);
  EXPECT_NE(show.err.find("aspisd identity init"), std::string::npos) << show.err;
}

TEST(AspisdIdentity, UnknownBackendIsAUsageError) {
  TempDir dir;
  auto init = Cli({"identity", "init", "--rot", "pluton", "--state", (dir / "s").string()});
  EXPECT_NE(init.code, 0);
  EXPECT_FALSE(std::filesystem::exists(dir / "s"));
}

}  // namespace
}  // namespace aspis::device
