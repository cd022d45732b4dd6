// Products and device groups, with azsphere's nouns and flags: `--product NAME`,
// `--device-group PRODUCT/GROUP`.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <optional>

#include "cli/command.hpp"
#include "cli/session.hpp"

namespace aspis::cli {

namespace {

using json::Json;

const std::vector<std::string> kProductColumns = {"id", "name", "description"};
const std::vector<std::string> kGroupColumns = {"id",      "product",       "name",
                                                "os_feed", "update_policy", "app_updates"};

std::string Products(const Session& s, const TenantOption& t) {
  return "/v1/tenants/" + t.Of(s) + "/products";
}

// The path of a product given by name or ID (names may hold spaces, which a path may not).
Expected<std::string> Product(const Session& s, const TenantOption& t, const std::string& given) {
  auto products = Request(s, "GET", Products(s, t));
  if (!products) return std::unexpected(products.error());
  for (const auto& p : *products) {
    if (p.value("name", "") == given || p.value("id", "") == given) {
      return Products(s, t) + "/" + p.value("id", "");
    }
  }
  return Fail(CoreErrc::kNotFound, "no product " + given);
}

// The ID of `PRODUCT/GROUP` (names), or of a group given by its ID.
Expected<std::string> GroupId(const Session& s, const TenantOption& t, const std::string& given) {
  const auto slash = given.find('/');
  if (slash == std::string::npos) return given;
  auto product = Product(s, t, given.substr(0, slash));
  if (!product) return std::unexpected(product.error());
  auto groups = Request(s, "GET", *product + "/device-groups");
  if (!groups) return std::unexpected(groups.error());
  for (const auto& g : *groups) {
    if (g.value("name", "") == given.substr(slash + 1)) return g.value("id", "");
  }
  return Fail(CoreErrc::kNotFound, "no device group " + given);
}

class ProductCreate final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override {
    tenant_.AddTo(verb);
    verb->add_option("--name", name_)->required();
    verb->add_option("--description", description_);
  }
  Output Format() const override { return {.columns = kProductColumns}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Typed(Request(s, "POST", Products(s, tenant_),
                         wire::api::ProductFields{.name = name_, .description = description_}),
                 wire::api::ProductFrom);
  }

 private:
  std::string name_, description_;
  TenantOption tenant_;
};

// list, show, delete: one shape.
class ProductVerb final : public ServiceCommand {
 public:
  explicit ProductVerb(std::string verb) : verb_(std::move(verb)) {}
  void AddOptions(CLI::App* verb) override {
    tenant_.AddTo(verb);
    if (verb_ != "list") verb->add_option("--product", product_, "Name or ID")->required();
  }
  Output Format() const override { return {.columns = kProductColumns}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    if (verb_ == "list")
      return Typed(Request(s, "GET", Products(s, tenant_)), wire::api::ProductFrom);
    auto product = Product(s, tenant_, product_);
    if (!product) return std::unexpected(product.error());
    if (verb_ == "delete") return Typed(Request(s, "DELETE", *product), wire::api::DeletionFrom);
    return Typed(Request(s, "GET", *product), wire::api::ProductFrom);
  }

 private:
  std::string verb_, product_;
  TenantOption tenant_;
};

class ProductUpdate final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override {
    tenant_.AddTo(verb);
    verb->add_option("--product", product_, "Name or ID")->required();
    verb->add_option("--new-name", name_);
    verb->add_option("--new-description", description_);
  }
  Output Format() const override { return {.columns = kProductColumns}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    auto product = Product(s, tenant_, product_);
    if (!product) return std::unexpected(product.error());
    return Typed(Request(s, "PATCH", *product,
                         wire::api::ProductFields{.name = name_, .description = description_}),
                 wire::api::ProductFrom);
  }

 private:
  std::string product_;
  std::optional<std::string> name_, description_;
  TenantOption tenant_;
};

// The options of the fields create and update share.
void AddGroupOptions(CLI::App* verb, wire::api::DeviceGroupFields& fields) {
  verb->add_option("--description", fields.description);
  verb->add_option("--os-feed", fields.os_feed)
      ->check(CLI::IsMember(
          std::vector<std::string>(wire::api::kOsFeeds.begin(), wire::api::kOsFeeds.end())));
  verb->add_option("--update-policy", fields.update_policy)
      ->check(CLI::IsMember(std::vector<std::string>(wire::api::kUpdatePolicies.begin(),
                                                     wire::api::kUpdatePolicies.end())));
  verb->add_option("--app-updates", fields.app_updates, "Cloud app updates: true or false");
}

class GroupCreate final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override {
    tenant_.AddTo(verb);
    verb->add_option("--product", product_, "Name or ID")->required();
    verb->add_option("--name", fields_.name)->required();
    AddGroupOptions(verb, fields_);
  }
  Output Format() const override { return {.columns = kGroupColumns}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    auto product = Product(s, tenant_, product_);
    if (!product) return std::unexpected(product.error());
    return Typed(Request(s, "POST", *product + "/device-groups", fields_),
                 wire::api::DeviceGroupFrom);
  }

 private:
  std::string product_;
  wire::api::DeviceGroupFields fields_;
  TenantOption tenant_;
};

class GroupList final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override {
    tenant_.AddTo(verb);
    verb->add_option("--product", product_, "Only this product's groups (name or ID)");
  }
  Output Format() const override { return {.columns = kGroupColumns}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    if (!product_.empty()) {
      auto product = Product(s, tenant_, product_);
      if (!product) return std::unexpected(product.error());
      return Typed(Request(s, "GET", *product + "/device-groups"), wire::api::DeviceGroupFrom);
    }
    return Typed(Request(s, "GET", "/v1/tenants/" + tenant_.Of(s) + "/device-groups"),
                 wire::api::DeviceGroupFrom);
  }

 private:
  std::string product_;
  TenantOption tenant_;
};

// show, update, delete of one group.
class GroupVerb final : public ServiceCommand {
 public:
  explicit GroupVerb(std::string verb) : verb_(std::move(verb)) {}
  void AddOptions(CLI::App* verb) override {
    tenant_.AddTo(verb);
    verb->add_option("--device-group", group_, "PRODUCT/GROUP or the group's ID")->required();
    if (verb_ == "update") {
      verb->add_option("--new-name", fields_.name);
      AddGroupOptions(verb, fields_);
    }
  }
  Output Format() const override { return {.columns = kGroupColumns}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    auto id = GroupId(s, tenant_, group_);
    if (!id) return std::unexpected(id.error());
    const std::string target = "/v1/tenants/" + tenant_.Of(s) + "/device-groups/" + *id;
    if (verb_ == "show") return Typed(Request(s, "GET", target), wire::api::DeviceGroupFrom);
    if (verb_ == "delete") return Typed(Request(s, "DELETE", target), wire::api::DeletionFrom);
    return Typed(Request(s, "PATCH", target, fields_), wire::api::DeviceGroupFrom);
  }

 private:
  std::string verb_, group_;
  wire::api::DeviceGroupFields fields_;
  TenantOption tenant_;
};

class DeploymentCreate final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override {
    tenant_.AddTo(verb);
    verb->add_option("--device-group", group_, "PRODUCT/GROUP or the group's ID")->required();
    verb->add_option("--images", images_, "Image IDs, one per component")->required();
    auto* stages = verb->add_option("--stages", stages_,
                                    "Roll out in stages: cumulative percents of the group's "
                                    "devices, ascending (100 is added when last is less)")
                       ->delimiter(',');
    auto* batch = verb->add_option("--batch-size", batch_size_,
                                   "Roll out in stages of this many devices each");
    stages->excludes(batch);
    verb->add_option("--failure-threshold", threshold_,
                     "Pause the rollout when more than this percent of a stage's devices fail "
                     "(default 10)");
  }
  Output Format() const override { return {.columns = {"id", "created_at", "state", "images"}}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    auto id = GroupId(s, tenant_, group_);
    if (!id) return std::unexpected(id.error());
    wire::api::DeploymentRequest request{images_, std::nullopt};
    if (!stages_.empty() || batch_size_ > 0) {
      if (!stages_.empty() && stages_.back() < 100) stages_.push_back(100);
      request.rollout = {stages_, batch_size_,
                         threshold_.value_or(wire::api::kDefaultFailureThreshold)};
    } else if (threshold_) {
      return Fail(CoreErrc::kInvalidArgument, "--failure-threshold needs --stages or --batch-size");
    }
    return Typed(
        Request(s, "POST",
                "/v1/tenants/" + tenant_.Of(s) + "/device-groups/" + *id + "/deployments", request),
        wire::api::DeploymentFrom);
  }

 private:
  std::string group_;
  std::vector<std::string> images_;
  std::vector<std::int64_t> stages_;
  std::int64_t batch_size_ = 0;
  std::optional<std::int64_t> threshold_;
  TenantOption tenant_;
};

class DeploymentList final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override {
    tenant_.AddTo(verb);
    verb->add_option("--device-group", group_, "PRODUCT/GROUP or the group's ID")->required();
  }
  Output Format() const override {
    return {.columns = {"id", "current", "state", "created_at", "created_by", "images"}};
  }

 protected:
  Expected<Json> Call(const Session& s) override {
    auto id = GroupId(s, tenant_, group_);
    if (!id) return std::unexpected(id.error());
    return Typed(Request(s, "GET",
                         "/v1/tenants/" + tenant_.Of(s) + "/device-groups/" + *id + "/deployments"),
                 wire::api::DeploymentFrom);
  }

 private:
  std::string group_;
  TenantOption tenant_;
};

void PrintDeployment(std::ostream& out, const Json& doc) {
  auto d = wire::api::DeploymentFrom(doc);
  if (!d) {
    out << d.error().message() << "\n";
    return;
  }
  out << "Deployment ID:  " << d->id << (d->current ? " (current)" : "") << "\n"
      << "Device group:   " << d->device_group_id << "\n"
      << "Created:        " << UtcTime(d->created_at) << " by " << d->created_by << "\n"
      << "State:          " << d->state << (d->reason.empty() ? "" : ": " + d->reason) << "\n";
  if (d->rollout) {
    const auto& r = *d->rollout;
    out << "Rollout:        "
        << (r.batch_size > 0
                ? fmt::format("batches of {} devices", r.batch_size)
                : fmt::format("stages of {} % of the group", fmt::join(r.stages, ", ")))
        << fmt::format(", pausing when over {} % of a stage fail\n", r.failure_threshold);
    for (const auto& stage : d->stages) {
      out << fmt::format("  stage {}: {} devices, {} succeeded, {} failed, {} waiting\n",
                         stage.stage, stage.devices, stage.succeeded, stage.failed,
                         stage.devices - stage.succeeded - stage.failed);
    }
  }
  out << "Images, by what the group's devices last reported:\n";
  for (const auto& p : d->progress) {
    out << fmt::format(
        "  {}  downloading {}, downloaded {}, installing {}, installed {}, failed {}, reverted "
        "{}\n",
        p.image_id, p.downloading, p.downloaded, p.installing, p.installed, p.failed, p.reverted);
    for (const auto& [device, reason] : p.failures)
      out << fmt::format("    {}: {}\n", device, reason);
  }
}

// `deployment show`, and `deployment pause|resume|stop`, which steer a staged rollout.
class DeploymentVerb final : public ServiceCommand {
 public:
  explicit DeploymentVerb(std::string action = {}) : action_(std::move(action)) {}
  void AddOptions(CLI::App* verb) override {
    tenant_.AddTo(verb);
    verb->add_option("--deployment-id", id_, "The deployment's ID")->required();
  }
  Output Format() const override { return {.table = PrintDeployment}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    const std::string target = "/v1/tenants/" + tenant_.Of(s) + "/deployments/" + id_;
    return Typed(
        action_.empty() ? Request(s, "GET", target) : Request(s, "POST", target + "/" + action_),
        wire::api::DeploymentFrom);
  }

 private:
  std::string action_, id_;
  TenantOption tenant_;
};

class DeviceUpdate final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override {
    tenant_.AddTo(verb);
    verb->add_option("--device", device_, "Device ID")->required();
    verb->add_option("--device-group", group_, "PRODUCT/GROUP or the group's ID")->required();
  }
  Output Format() const override { return {.columns = {"id", "device_group_id"}}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    auto id = GroupId(s, tenant_, group_);
    if (!id) return std::unexpected(id.error());
    return Typed(
        Request(s, "POST", "/v1/tenants/" + tenant_.Of(s) + "/devices/" + device_ + "/device-group",
                wire::api::DeviceGroupAssignment{*id}),
        wire::api::DeviceFrom);
  }

 private:
  std::string device_, group_;
  TenantOption tenant_;
};

}  // namespace

void AddProductCommands(CLI::App& app, Registry& r) {
  auto* product = app.add_subcommand("product", "Products (device models)")->require_subcommand(1);
  r.Add<ProductCreate>(
      product->add_subcommand("create", "Create a product and its five default device groups"));
  r.Add<ProductVerb>(product->add_subcommand("list", "List products"), "list");
  r.Add<ProductVerb>(product->add_subcommand("show", "Show a product"), "show");
  r.Add<ProductUpdate>(product->add_subcommand("update", "Rename or describe a product"));
  r.Add<ProductVerb>(
      product->add_subcommand("delete", "Delete a product whose groups hold no device"), "delete");

  auto* group =
      app.add_subcommand("device-group", "Device groups of products")->require_subcommand(1);
  r.Add<GroupCreate>(group->add_subcommand("create", "Create a device group in a product"));
  r.Add<GroupList>(group->add_subcommand("list", "List device groups"));
  r.Add<GroupVerb>(group->add_subcommand("show", "Show a device group"), "show");
  r.Add<GroupVerb>(group->add_subcommand(
                       "update", "Change a group's name, OS feed, update policy or app updates"),
                   "update");
  r.Add<GroupVerb>(group->add_subcommand("delete", "Delete a device group that holds no device"),
                   "delete");
  auto* deployment =
      group->add_subcommand("deployment", "The group's app deployments")->require_subcommand(1);
  r.Add<DeploymentCreate>(deployment->add_subcommand(
      "create", "Deploy a set of app images to the group (it replaces the current deployment)"));
  r.Add<DeploymentList>(
      deployment->add_subcommand("list", "The group's deployments, newest (current) first"));
}

void AddDeploymentCommands(CLI::App& app, Registry& r) {
  auto* deployment =
      app.add_subcommand("deployment", "App deployments of device groups")->require_subcommand(1);
  r.Add<DeploymentVerb>(deployment->add_subcommand(
      "show", "Show a deployment, its rollout's stages and where its images stand"));
  r.Add<DeploymentVerb>(
      deployment->add_subcommand("pause", "Pause a staged rollout: no further stage opens"),
      "pause");
  r.Add<DeploymentVerb>(
      deployment->add_subcommand("resume",
                                 "Resume a paused rollout; when it paused itself on "
                                 "failures, the failed stage is accepted"),
      "resume");
  r.Add<DeploymentVerb>(
      deployment->add_subcommand(
          "stop", "Stop a rollout for good: its devices go back to the deployment before it"),
      "stop");
}

void AddDeviceUpdateCommand(CLI::App& device, Registry& r) {
  r.Add<DeviceUpdate>(device.add_subcommand("update", "Move a device to a device group"));
}

}  // namespace aspis::cli
