#include "service/api/product_routes.hpp"

#include <array>

#include "crypto/encoding.hpp"
#include "service/api/common.hpp"
#include "service/deploy/rollout.hpp"
#include "wire/check_in.hpp"
#include "wire/operator_api.hpp"

namespace aspis::service::api {

namespace {

using http::Request;
using http::Response;
using json::Json;
using store::Role;

struct DefaultGroup {
  const char* name;
  const char* os_feed;
  bool app_updates;
};

// What `product create` makes, as Azure Sphere does.
constexpr std::array<DefaultGroup, 5> kDefaultGroups = {{
    {"Development", "retail", false},
    {"Field Test", "retail", true},
    {"Production", "retail", true},
    {"Production OS Evaluation", "retail-eval", true},
    {"Field Test OS Evaluation", "retail-eval", true},
}};

Json ProductJson(const store::Product& p) {
  return wire::api::ToJson(wire::api::Product{p.id, p.name, p.description, p.created_at});
}

Json GroupJson(const store::DeviceGroup& g, std::string_view product_name) {
  return wire::api::ToJson(wire::api::DeviceGroup{g.id, g.product_id, std::string(product_name),
                                                  g.name, g.description, g.os_feed, g.update_policy,
                                                  g.app_updates, g.created_at});
}

Response BadRequest(std::string_view detail) {
  return Response::Problem(400, "Bad request", detail);
}

// Applies the fields a request gives to `g`.
void Apply(const wire::api::DeviceGroupFields& f, store::DeviceGroup& g) {
  if (f.name) g.name = *f.name;
  if (f.description) g.description = *f.description;
  if (f.os_feed) g.os_feed = *f.os_feed;
  if (f.update_policy) g.update_policy = *f.update_policy;
  if (f.app_updates) g.app_updates = *f.app_updates;
}

class Products {
 public:
  explicit Products(const Context& c) : c_(c) {}

  Response Create(const Request& request, const Principal& who, std::string_view tenant) const {
    auto fields = wire::api::ParseProductFields(request.body);
    if (!fields) return BadRequest(fields.error().message());
    if (!fields->name) return BadRequest("\"name\" is required");
    auto id = crypto::RandomUuid();
    if (!id) return FromError(id.error());
    const auto now = UnixSeconds(c_.clock.Now());
    const store::Product product{*id, std::string(tenant), *fields->name,
                                 fields->description.value_or(""), now};
    auto made = Audited(c_.store, c_.clock, who, tenant, "product.create", product.name, [&] {
      if (auto ok = c_.store.AddProduct(product); !ok) return ok;
      for (const auto& d : kDefaultGroups) {
        auto group_id = crypto::RandomUuid();
        if (!group_id) return Expected<void>(std::unexpected(group_id.error()));
        if (auto ok = c_.store.AddDeviceGroup({*group_id, std::string(tenant), *id, d.name, "",
                                               d.os_feed, "UpdateAll", d.app_updates, now});
            !ok) {
          return ok;
        }
      }
      return Expected<void>{};
    });
    if (!made) return FromError(made.error());
    return Response::Json(201, ProductJson(product).dump());
  }

  Response List(std::string_view tenant) const {
    auto products = c_.store.ListProducts(tenant);
    if (!products) return FromError(products.error());
    Json list = Json::array();
    for (const auto& p : *products) list.push_back(ProductJson(p));
    return Response::Json(200, list.dump());
  }

  Response Show(const Request& request, std::string_view tenant) const {
    auto product = c_.store.GetProduct(tenant, request.Param("product"));
    return product ? Response::Json(200, ProductJson(*product).dump()) : FromError(product.error());
  }

  Response Update(const Request& request, const Principal& who, std::string_view tenant) const {
    auto product = c_.store.GetProduct(tenant, request.Param("product"));
    if (!product) return FromError(product.error());
    auto fields = wire::api::ParseProductFields(request.body);
    if (!fields) return BadRequest(fields.error().message());
    if (!fields->name && !fields->description) return BadRequest("the request changes nothing");
    product->name = fields->name.value_or(product->name);
    product->description = fields->description.value_or(product->description);
    auto updated = Audited(c_.store, c_.clock, who, tenant, "product.update", product->id,
                           [&] { return c_.store.UpdateProduct(*product); });
    return updated ? Response::Json(200, ProductJson(*product).dump()) : FromError(updated.error());
  }

  Response Delete(const Request& request, const Principal& who, std::string_view tenant) const {
    auto product = c_.store.GetProduct(tenant, request.Param("product"));
    if (!product) return FromError(product.error());
    auto deleted = Audited(c_.store, c_.clock, who, tenant, "product.delete", product->id,
                           [&] { return c_.store.DeleteProduct(tenant, product->id); });
    return deleted ? Response::Json(200, wire::api::ToJson(wire::api::Deletion{product->id}).dump())
                   : FromError(deleted.error());
  }

  Response CreateGroup(const Request& request, const Principal& who,
                       std::string_view tenant) const {
    auto product = c_.store.GetProduct(tenant, request.Param("product"));
    if (!product) return FromError(product.error());
    auto fields = wire::api::ParseDeviceGroupFields(request.body);
    if (!fields) return BadRequest(fields.error().message());
    if (!fields->name) return BadRequest("\"name\" is required");
    auto id = crypto::RandomUuid();
    if (!id) return FromError(id.error());
    store::DeviceGroup group{
        *id,  std::string(tenant),        product->id, "", "", "retail", "UpdateAll",
        true, UnixSeconds(c_.clock.Now())};
    Apply(*fields, group);
    auto made =
        Audited(c_.store, c_.clock, who, tenant, "device-group.create",
                product->name + "/" + group.name, [&] { return c_.store.AddDeviceGroup(group); });
    return made ? Response::Json(201, GroupJson(group, product->name).dump())
                : FromError(made.error());
  }

  Response ListGroups(const Request& request, std::string_view tenant) const {
    std::string product_id;
    if (const auto product = request.Param("product"); !product.empty()) {
      auto found = c_.store.GetProduct(tenant, product);
      if (!found) return FromError(found.error());
      product_id = found->id;
    }
    auto groups = c_.store.ListDeviceGroups(tenant, product_id);
    if (!groups) return FromError(groups.error());
    auto products = c_.store.ListProducts(tenant);
    if (!products) return FromError(products.error());
    Json list = Json::array();
    for (const auto& g : *groups) list.push_back(GroupJson(g, ProductName(*products, g)));
    return Response::Json(200, list.dump());
  }

  Response ShowGroup(const Request& request, std::string_view tenant) const {
    auto group = c_.store.GetDeviceGroup(tenant, request.Param("group"));
    if (!group) return FromError(group.error());
    auto product = c_.store.GetProduct(tenant, group->product_id);
    return Response::Json(200, GroupJson(*group, product ? product->name : "").dump());
  }

  Response UpdateGroup(const Request& request, const Principal& who,
                       std::string_view tenant) const {
    auto group = c_.store.GetDeviceGroup(tenant, request.Param("group"));
    if (!group) return FromError(group.error());
    auto fields = wire::api::ParseDeviceGroupFields(request.body);
    if (!fields) return BadRequest(fields.error().message());
    if (!fields->name && !fields->description && !fields->os_feed && !fields->update_policy &&
        !fields->app_updates) {
      return BadRequest("the request changes nothing");
    }
    Apply(*fields, *group);
    auto updated = Audited(c_.store, c_.clock, who, tenant, "device-group.update", group->id,
                           [&] { return c_.store.UpdateDeviceGroup(*group); });
    if (!updated) return FromError(updated.error());
    auto product = c_.store.GetProduct(tenant, group->product_id);
    return Response::Json(200, GroupJson(*group, product ? product->name : "").dump());
  }

  Response DeleteGroup(const Request& request, const Principal& who,
                       std::string_view tenant) const {
    const std::string id(request.Param("group"));
    auto deleted = Audited(c_.store, c_.clock, who, tenant, "device-group.delete", id,
                           [&] { return c_.store.DeleteDeviceGroup(tenant, id); });
    return deleted ? Response::Json(200, wire::api::ToJson(wire::api::Deletion{id}).dump())
                   : FromError(deleted.error());
  }

  Response MoveDevice(const Request& request, const Principal& who, std::string_view tenant) const {
    auto assignment = wire::api::ParseDeviceGroupAssignment(request.body);
    if (!assignment) return BadRequest(assignment.error().message());
    const std::string& group = assignment->device_group_id;
    const std::string device(request.Param("device"));
    auto moved = Audited(c_.store, c_.clock, who, tenant, "device.update", device + " -> " + group,
                         [&] { return c_.store.SetDeviceGroup(tenant, device, group); });
    if (!moved) return FromError(moved.error());
    auto shown = c_.store.GetDevice(tenant, device);
    return shown ? Response::Json(200, wire::api::ToJson(DeviceAnswer(*shown)).dump())
                 : FromError(shown.error());
  }

  Response Deploy(const Request& request, const Principal& who, std::string_view tenant) const {
    auto group = c_.store.GetDeviceGroup(tenant, request.Param("group"));
    if (!group) return FromError(group.error());
    auto request_body = wire::api::ParseDeploymentRequest(request.body);
    if (!request_body) return BadRequest(request_body.error().message());
    auto id = crypto::RandomUuid();
    if (!id) return FromError(id.error());
    const auto now = UnixSeconds(c_.clock.Now());
    store::Deployment deployment{
        .id = *id,
        .tenant_id = std::string(tenant),
        .device_group_id = group->id,
        .created_at = now,
        .created_by = who.actor(),
        .image_ids = std::move(request_body->images),
    };
    if (const auto& r = request_body->rollout) {
      deployment.rollout = {r->stages, r->batch_size, r->failure_threshold};
    }
    auto previous = c_.store.ListDeployments(tenant, group->id, 1);
    if (!previous) return FromError(previous.error());
    auto made = Audited(c_.store, c_.clock, who, tenant, "deployment.create", group->id + " " + *id,
                        [&] { return deploy::Create(c_.store, deployment, now); });
    if (!made) return FromError(made.error());
    if (!previous->empty()) PrepareDeltas(tenant, previous->front(), deployment);
    return Response::Json(201, DeploymentJson(deployment, true).dump());
  }

  // Starts making the deltas the group's devices will want: from each image of the deployment
  // before to the new image of its component. A failure here only costs devices the delta.
  void PrepareDeltas(std::string_view tenant, const store::Deployment& before,
                     const store::Deployment& now) const {
    if (c_.deltas == nullptr) return;
    for (const auto& from_id : before.image_ids) {
      for (const auto& to_id : now.image_ids) {
        auto from = c_.store.GetImage(tenant, from_id);
        auto to = c_.store.GetImage(tenant, to_id);
        if (from && to) c_.deltas->Find(*from, *to);
      }
    }
  }

  // The operator's pause, resume and stop of a rollout.
  Response Steer(const Request& request, const Principal& who, std::string_view tenant,
                 std::string_view action) const {
    const std::string id(request.Param("deployment"));
    auto steered =
        Audited(c_.store, c_.clock, who, tenant, "deployment." + std::string(action), id, [&] {
          auto deployment = c_.store.GetDeployment(tenant, id);
          if (!deployment) return Expected<void>(std::unexpected(deployment.error()));
          if (action == "pause") return deploy::Pause(c_.store, *deployment, who.actor());
          if (action == "stop") return deploy::Stop(c_.store, *deployment, who.actor());
          return deploy::Resume(c_.store, *deployment, UnixSeconds(c_.clock.Now()));
        });
    if (!steered) return FromError(steered.error());
    return ShowDeployment(request, tenant);
  }

  Response Deployments(const Request& request, std::string_view tenant) const {
    auto group = c_.store.GetDeviceGroup(tenant, request.Param("group"));
    if (!group) return FromError(group.error());
    auto deployments = c_.store.ListDeployments(tenant, group->id);
    if (!deployments) return FromError(deployments.error());
    Json list = Json::array();
    for (const auto& d : *deployments) list.push_back(DeploymentJson(d, list.empty()));
    return Response::Json(200, list.dump());
  }

  // A deployment and where its images stand on the devices that reported them.
  Response ShowDeployment(const Request& request, std::string_view tenant) const {
    auto deployment = c_.store.GetDeployment(tenant, request.Param("deployment"));
    if (!deployment) return FromError(deployment.error());
    auto newest = c_.store.ListDeployments(tenant, deployment->device_group_id, 1);
    if (!newest) return FromError(newest.error());
    wire::api::Deployment shown =
        Shown(*deployment, !newest->empty() && newest->front().id == deployment->id);
    auto stages = deploy::Progress(c_.store, *deployment);
    if (!stages) return FromError(stages.error());
    for (const auto& s : *stages)
      shown.stages.push_back({s.stage, s.devices, s.succeeded, s.failed});
    for (const auto& id : deployment->image_ids) {
      auto progress = c_.store.GetImageProgress(tenant, deployment->device_group_id, id);
      if (!progress) return FromError(progress.error());
      auto count = [&](std::string_view state) {
        const auto n = progress->devices.find(state);
        return n == progress->devices.end() ? std::int64_t{0} : n->second;
      };
      shown.progress.push_back({id, count(wire::kDownloading), count(wire::kDownloaded),
                                count(wire::kFailed), count(wire::kInstalling),
                                count(wire::kInstalled), count(wire::kReverted),
                                std::move(progress->failures)});
    }
    return Response::Json(200, wire::api::ToJson(shown).dump());
  }

 private:
  static wire::api::Deployment Shown(const store::Deployment& d, bool current) {
    wire::api::Deployment shown{d.id,        d.device_group_id, d.created_at, d.created_by,
                                d.image_ids, current,           {},           std::nullopt,
                                d.state,     d.stage,           d.reason,     {}};
    if (d.rollout.staged()) {
      shown.rollout = {d.rollout.percents, d.rollout.batch_size, d.rollout.failure_threshold};
    }
    return shown;
  }
  static Json DeploymentJson(const store::Deployment& d, bool current) {
    return wire::api::ToJson(Shown(d, current));
  }

  static std::string ProductName(const std::vector<store::Product>& products,
                                 const store::DeviceGroup& g) {
    for (const auto& p : products) {
      if (p.id == g.product_id) return p.name;
    }
    return "";
  }

  Context c_;
};

}  // namespace

void AddProductRoutes(http::Router& router, const Context& context) {
  auto p = std::make_shared<Products>(context);
  store::Store& store = context.store;
  const std::string base = "/v1/tenants/{tenant}";
  auto add = [&](const char* method, const std::string& path, Role role, TenantHandler handler) {
    router.Add(method, base + path, ForTenant(store, role, std::move(handler)));
  };
  add("POST", "/products", Role::kContributor,
      [p](const Request& r, const Principal& w, std::string_view t) { return p->Create(r, w, t); });
  add("GET", "/products", Role::kReader,
      [p](const Request&, const Principal&, std::string_view t) { return p->List(t); });
  add("GET", "/products/{product}", Role::kReader,
      [p](const Request& r, const Principal&, std::string_view t) { return p->Show(r, t); });
  add("PATCH", "/products/{product}", Role::kContributor,
      [p](const Request& r, const Principal& w, std::string_view t) { return p->Update(r, w, t); });
  add("DELETE", "/products/{product}", Role::kAdministrator,
      [p](const Request& r, const Principal& w, std::string_view t) { return p->Delete(r, w, t); });
  add("POST", "/products/{product}/device-groups", Role::kContributor,
      [p](const Request& r, const Principal& w, std::string_view t) {
        return p->CreateGroup(r, w, t);
      });
  add("GET", "/products/{product}/device-groups", Role::kReader,
      [p](const Request& r, const Principal&, std::string_view t) { return p->ListGroups(r, t); });
  add("GET", "/device-groups", Role::kReader,
      [p](const Request& r, const Principal&, std::string_view t) { return p->ListGroups(r, t); });
  add("GET", "/device-groups/{group}", Role::kReader,
      [p](const Request& r, const Principal&, std::string_view t) { return p->ShowGroup(r, t); });
  add("PATCH", "/device-groups/{group}", Role::kContributor,
      [p](const Request& r, const Principal& w, std::string_view t) {
        return p->UpdateGroup(r, w, t);
      });
  add("DELETE", "/device-groups/{group}", Role::kAdministrator,
      [p](const Request& r, const Principal& w, std::string_view t) {
        return p->DeleteGroup(r, w, t);
      });
  add("POST", "/device-groups/{group}/deployments", Role::kContributor,
      [p](const Request& r, const Principal& w, std::string_view t) { return p->Deploy(r, w, t); });
  add("GET", "/device-groups/{group}/deployments", Role::kReader,
      [p](const Request& r, const Principal&, std::string_view t) { return p->Deployments(r, t); });
  add("GET", "/deployments/{deployment}", Role::kReader,
      [p](const Request& r, const Principal&, std::string_view t) {
        return p->ShowDeployment(r, t);
      });
  for (const char* action : {"pause", "resume", "stop"}) {
    add("POST", std::string("/deployments/{deployment}/") + action, Role::kContributor,
        [p, action](const Request& r, const Principal& w, std::string_view t) {
          return p->Steer(r, w, t, action);
        });
  }
  add("POST", "/devices/{device}/device-group", Role::kContributor,
      [p](const Request& r, const Principal& w, std::string_view t) {
        return p->MoveDevice(r, w, t);
      });
}

}  // namespace aspis::service::api
