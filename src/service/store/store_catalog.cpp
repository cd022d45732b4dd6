// The image catalog's part of the store: publisher key sets, images and uploads.
#include <charconv>
#include <map>

#include "service/store/rows.hpp"
#include "service/store/store.hpp"

namespace aspis::service::store {

using namespace rows;

namespace {

constexpr std::string_view kImageColumns =
    "id, tenant_id, component_id, name, kind, version, security_version, sha256, size, manifest, "
    "uploaded_at";

Image ToImage(const Row& r) {
  return {Text(r, 0),   Text(r, 1), Text(r, 2),   Text(r, 3), Text(r, 4),   Text(r, 5),
          Number(r, 6), Text(r, 7), Number(r, 8), Text(r, 9), Number(r, 10)};
}

Upload ToUpload(const Row& r) { return {Text(r, 0), Text(r, 1), Number(r, 2), Number(r, 3)}; }

// Stage percents as stored: "10,50,100".
std::string JoinPercents(const std::vector<std::int64_t>& percents) {
  std::string out;
  for (const auto p : percents) out += (out.empty() ? "" : ",") + std::to_string(p);
  return out;
}

std::vector<std::int64_t> SplitPercents(std::string_view stored) {
  std::vector<std::int64_t> out;
  while (!stored.empty()) {
    const std::size_t comma = stored.find(',');
    std::int64_t value = 0;
    const auto part = stored.substr(0, comma);
    std::from_chars(part.data(), part.data() + part.size(), value);
    out.push_back(value);
    stored = comma == std::string_view::npos ? std::string_view() : stored.substr(comma + 1);
  }
  return out;
}

}  // namespace

Expected<std::optional<PublisherKeySetRecord>> Store::GetPublisherKeySet(std::string_view tenant) {
  auto rows = db_->Query(
      "SELECT tenant_id, version, root_fingerprint, envelope, uploaded_at FROM publisher_key_sets "
      "WHERE tenant_id = $1",
      {std::string(tenant)});
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return std::nullopt;
  const Row& r = rows->front();
  return PublisherKeySetRecord{Text(r, 0), Number(r, 1), Text(r, 2), Text(r, 3), Number(r, 4)};
}

Expected<void> Store::PutPublisherKeySet(const PublisherKeySetRecord& k,
                                         std::int64_t replaces_version) {
  if (replaces_version == 0) {
    return Discard(db_->Query(
        "INSERT INTO publisher_key_sets (tenant_id, version, root_fingerprint, envelope, "
        "uploaded_at) VALUES ($1, $2, $3, $4, $5)",
        {k.tenant_id, k.version, k.root_fingerprint, k.envelope, k.uploaded_at}));
  }
  auto updated =
      One(db_->Query("UPDATE publisher_key_sets SET version = $1, root_fingerprint = $2, "
                     "envelope = $3, uploaded_at = $4 WHERE tenant_id = $5 AND "
                     "version = $6 RETURNING tenant_id",
                     {k.version, k.root_fingerprint, k.envelope, k.uploaded_at, k.tenant_id,
                      replaces_version}),
          "publisher key set");
  if (!updated && updated.error() == StoreErrc::kNotFound) {
    return Fail(StoreErrc::kConflict, "the publisher key set changed meanwhile; upload again");
  }
  return updated;
}

Expected<void> Store::AddImage(const Image& i) {
  const std::string exists = "image " + i.id + " exists; images are immutable";
  // A tenant's image may not take a platform image's ID, nor the platform one a tenant holds:
  // devices see both kinds in one update manifest, by ID.
  auto clash =
      db_->Query(i.tenant_id.empty() ? "SELECT 1 FROM images WHERE id = $1"
                                     : "SELECT 1 FROM images WHERE id = $1 AND tenant_id = ''",
                 {i.id});
  if (!clash) return std::unexpected(clash.error());
  if (!clash->empty()) return Fail(StoreErrc::kConflict, exists);
  auto added =
      Discard(db_->Query("INSERT INTO images (" + std::string(kImageColumns) +
                             ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                         {i.id, i.tenant_id, i.component_id, i.name, i.kind, i.version,
                          i.security_version, i.sha256, i.size, i.manifest, i.uploaded_at}));
  if (!added && added.error() == StoreErrc::kConflict) return Fail(StoreErrc::kConflict, exists);
  return added;
}

Expected<Image> Store::GetImage(std::string_view tenant, std::string_view id) {
  return Single(Map<Image>(db_->Query("SELECT " + std::string(kImageColumns) +
                                          " FROM images WHERE tenant_id = $1 AND id = $2",
                                      {std::string(tenant), std::string(id)}),
                           ToImage),
                "image");
}

Expected<std::vector<Image>> Store::ListImages(std::string_view tenant) {
  return Map<Image>(db_->Query("SELECT " + std::string(kImageColumns) +
                                   " FROM images WHERE tenant_id = $1 ORDER BY uploaded_at, id",
                               {std::string(tenant)}),
                    ToImage);
}

Expected<void> Store::AddUpload(const Upload& u) {
  return Discard(db_->Query(
      "INSERT INTO uploads (id, tenant_id, received, created_at) VALUES ($1, $2, $3, $4)",
      {u.id, u.tenant_id, u.received, u.created_at}));
}

Expected<Upload> Store::GetUpload(std::string_view tenant, std::string_view id) {
  return Single(Map<Upload>(db_->Query("SELECT id, tenant_id, received, created_at FROM uploads "
                                       "WHERE tenant_id = $1 AND id = $2",
                                       {std::string(tenant), std::string(id)}),
                            ToUpload),
                "upload");
}

Expected<void> Store::AdvanceUpload(std::string_view id, std::int64_t from, std::int64_t to) {
  auto moved = One(db_->Query("UPDATE uploads SET received = $1 WHERE id = $2 AND received = $3 "
                              "RETURNING id",
                              {to, std::string(id), from}),
                   "upload");
  if (!moved && moved.error() == StoreErrc::kNotFound) {
    return Fail(StoreErrc::kConflict, "the upload is not at offset " + std::to_string(from));
  }
  return moved;
}

Expected<Upload> Store::ClaimUpload(std::string_view tenant, std::string_view id) {
  return Single(Map<Upload>(db_->Query("DELETE FROM uploads WHERE tenant_id = $1 AND id = $2 "
                                       "RETURNING id, tenant_id, received, created_at",
                                       {std::string(tenant), std::string(id)}),
                            ToUpload),
                "upload");
}

Expected<std::int64_t> Store::CountUploads(std::string_view tenant) {
  auto rows =
      db_->Query("SELECT COUNT(*) FROM uploads WHERE tenant_id = $1", {std::string(tenant)});
  if (!rows) return std::unexpected(rows.error());
  return Number(rows->front(), 0);
}

Expected<void> Store::DeleteUpload(std::string_view id) {
  return Discard(db_->Query("DELETE FROM uploads WHERE id = $1", {std::string(id)}));
}

Expected<std::vector<Upload>> Store::ListUploadsCreatedBefore(std::int64_t at) {
  return Map<Upload>(db_->Query("SELECT id, tenant_id, received, created_at FROM uploads WHERE "
                                "created_at < $1",
                                {at}),
                     ToUpload);
}

namespace {

constexpr std::string_view kGroupColumns =
    "id, tenant_id, product_id, name, description, os_feed, update_policy, app_updates, "
    "created_at";

Product ToProduct(const Row& r) {
  return {Text(r, 0), Text(r, 1), Text(r, 2), Text(r, 3), Number(r, 4)};
}

DeviceGroup ToGroup(const Row& r) {
  return {Text(r, 0), Text(r, 1), Text(r, 2),        Text(r, 3),  Text(r, 4),
          Text(r, 5), Text(r, 6), Number(r, 7) != 0, Number(r, 8)};
}

// A unique-name violation as the operator should read it.
Expected<void> NameInUse(Expected<void> result, std::string_view what, std::string_view name) {
  if (!result && result.error() == StoreErrc::kConflict) {
    return Fail(StoreErrc::kConflict,
                std::string(what) + " \"" + std::string(name) + "\" exists already");
  }
  return result;
}

}  // namespace

Expected<void> Store::AddProduct(const Product& p) {
  return NameInUse(Discard(db_->Query("INSERT INTO products (id, tenant_id, name, description, "
                                      "created_at) VALUES ($1, $2, $3, $4, $5)",
                                      {p.id, p.tenant_id, p.name, p.description, p.created_at})),
                   "a product named", p.name);
}

Expected<Product> Store::GetProduct(std::string_view tenant, std::string_view id) {
  return Single(Map<Product>(db_->Query("SELECT id, tenant_id, name, description, created_at FROM "
                                        "products WHERE tenant_id = $1 AND (id = $2 OR name = $2)",
                                        {std::string(tenant), std::string(id)}),
                             ToProduct),
                "product");
}

Expected<std::vector<Product>> Store::ListProducts(std::string_view tenant) {
  return Map<Product>(db_->Query("SELECT id, tenant_id, name, description, created_at FROM "
                                 "products WHERE tenant_id = $1 ORDER BY name",
                                 {std::string(tenant)}),
                      ToProduct);
}

Expected<void> Store::UpdateProduct(const Product& p) {
  return NameInUse(One(db_->Query("UPDATE products SET name = $1, description = $2 WHERE "
                                  "tenant_id = $3 AND id = $4 RETURNING id",
                                  {p.name, p.description, p.tenant_id, p.id}),
                       "product"),
                   "a product named", p.name);
}

Expected<void> Store::DeleteProduct(std::string_view tenant, std::string_view id) {
  if (auto product = GetProduct(tenant, id); !product) return std::unexpected(product.error());
  auto devices = db_->Query(
      "SELECT COUNT(*) FROM devices d JOIN device_groups g ON d.device_group_id = g.id WHERE "
      "g.product_id = $1",
      {std::string(id)});
  if (!devices) return std::unexpected(devices.error());
  if (Number(devices->front(), 0) != 0) {
    return Fail(StoreErrc::kConflict,
                "the product's device groups hold devices; move them to another product first");
  }
  auto deployments = db_->Query(
      "SELECT COUNT(*) FROM deployments d JOIN device_groups g ON d.device_group_id = g.id "
      "WHERE g.product_id = $1",
      {std::string(id)});
  if (!deployments) return std::unexpected(deployments.error());
  if (Number(deployments->front(), 0) != 0) {
    return Fail(StoreErrc::kConflict,
                "the product's device groups have deployments, which are "
                "kept");
  }
  if (auto ok = Discard(db_->Query("DELETE FROM device_groups WHERE tenant_id = $1 AND "
                                   "product_id = $2",
                                   {std::string(tenant), std::string(id)}));
      !ok) {
    return ok;
  }
  return One(db_->Query("DELETE FROM products WHERE tenant_id = $1 AND id = $2 RETURNING id",
                        {std::string(tenant), std::string(id)}),
             "product");
}

Expected<void> Store::AddDeviceGroup(const DeviceGroup& g) {
  return NameInUse(
      Discard(db_->Query("INSERT INTO device_groups (" + std::string(kGroupColumns) +
                             ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                         {g.id, g.tenant_id, g.product_id, g.name, g.description, g.os_feed,
                          g.update_policy, std::int64_t{g.app_updates ? 1 : 0}, g.created_at})),
      "a device group named", g.name);
}

Expected<DeviceGroup> Store::GetDeviceGroup(std::string_view tenant, std::string_view id) {
  return Single(Map<DeviceGroup>(db_->Query("SELECT " + std::string(kGroupColumns) +
                                                " FROM device_groups WHERE tenant_id = $1 AND "
                                                "id = $2",
                                            {std::string(tenant), std::string(id)}),
                                 ToGroup),
                "device group");
}

Expected<std::vector<DeviceGroup>> Store::ListDeviceGroups(std::string_view tenant,
                                                           std::string_view product) {
  return Map<DeviceGroup>(
      db_->Query("SELECT " + std::string(kGroupColumns) +
                     " FROM device_groups WHERE tenant_id = $1 AND ($2 = '' OR product_id = $2) "
                     "ORDER BY product_id, name",
                 {std::string(tenant), std::string(product)}),
      ToGroup);
}

Expected<void> Store::UpdateDeviceGroup(const DeviceGroup& g) {
  return NameInUse(
      One(db_->Query("UPDATE device_groups SET name = $1, description = $2, os_feed = $3, "
                     "update_policy = $4, app_updates = $5 WHERE tenant_id = $6 AND id = $7 "
                     "RETURNING id",
                     {g.name, g.description, g.os_feed, g.update_policy,
                      std::int64_t{g.app_updates ? 1 : 0}, g.tenant_id, g.id}),
          "device group"),
      "a device group named", g.name);
}

Expected<void> Store::DeleteDeviceGroup(std::string_view tenant, std::string_view id) {
  if (auto group = GetDeviceGroup(tenant, id); !group) return std::unexpected(group.error());
  auto devices =
      db_->Query("SELECT COUNT(*) FROM devices WHERE device_group_id = $1", {std::string(id)});
  if (!devices) return std::unexpected(devices.error());
  if (Number(devices->front(), 0) != 0) {
    return Fail(StoreErrc::kConflict,
                "the device group holds devices; move them to another group first");
  }
  auto deployments =
      db_->Query("SELECT COUNT(*) FROM deployments WHERE device_group_id = $1", {std::string(id)});
  if (!deployments) return std::unexpected(deployments.error());
  if (Number(deployments->front(), 0) != 0) {
    return Fail(StoreErrc::kConflict, "the device group has deployments, which are kept");
  }
  return One(db_->Query("DELETE FROM device_groups WHERE tenant_id = $1 AND id = $2 "
                        "RETURNING id",
                        {std::string(tenant), std::string(id)}),
             "device group");
}

Expected<void> Store::SetDeviceGroup(std::string_view tenant, std::string_view device,
                                     std::string_view group) {
  return One(db_->Query("UPDATE devices SET device_group_id = $1 WHERE tenant_id = $2 AND id = $3 "
                        "AND EXISTS (SELECT 1 FROM device_groups WHERE id = $1 AND "
                        "tenant_id = $2) RETURNING id",
                        {std::string(group), std::string(tenant), std::string(device)}),
             "device or device group");
}

Expected<void> Store::AddDeployment(const Deployment& d) {
  if (auto ok = Discard(
          db_->Query("INSERT INTO deployments (id, tenant_id, device_group_id, "
                     "created_at, created_by, stages, batch_size, failure_threshold, "
                     "state, stage, reason, paused_by) VALUES ($1, $2, $3, $4, $5, $6, "
                     "$7, $8, $9, $10, $11, $12)",
                     {d.id, d.tenant_id, d.device_group_id, d.created_at, d.created_by,
                      JoinPercents(d.rollout.percents), d.rollout.batch_size,
                      d.rollout.failure_threshold, d.state, d.stage, d.reason, d.paused_by}));
      !ok) {
    return ok;
  }
  for (const auto& image : d.image_ids) {
    auto inserted = Discard(db_->Query(
        "INSERT INTO deployment_images (deployment_id, image_id, component_id) SELECT $1, id, "
        "component_id FROM images WHERE id = $2 AND tenant_id = $3 RETURNING image_id",
        {d.id, image, d.tenant_id}));
    if (!inserted) {
      if (inserted.error() == StoreErrc::kConflict) {
        return Fail(StoreErrc::kConflict,
                    "two images of one component: a deployment holds each component once");
      }
      return inserted;
    }
  }
  auto count =
      db_->Query("SELECT COUNT(*) FROM deployment_images WHERE deployment_id = $1", {d.id});
  if (!count) return std::unexpected(count.error());
  if (Number(count->front(), 0) != static_cast<std::int64_t>(d.image_ids.size())) {
    return Fail(StoreErrc::kNotFound, "an image of the deployment is not one of the tenant's");
  }
  return {};
}

Expected<Deployment> Store::GetDeployment(std::string_view tenant, std::string_view id) {
  auto found = DeploymentsWhere("id = $2", {std::string(tenant), std::string(id)});
  if (!found) return std::unexpected(found.error());
  if (found->empty()) return Fail(StoreErrc::kNotFound, "deployment not found");
  return std::move(found->front());
}

Expected<ImageProgress> Store::GetImageProgress(std::string_view tenant, std::string_view group,
                                                std::string_view image_id) {
  constexpr std::string_view kOfGroup =
      " FROM device_images di JOIN devices d ON d.tenant_id = di.tenant_id AND "
      "d.id = di.device_id WHERE di.tenant_id = $1 AND di.image_id = $2 AND "
      "d.device_group_id = $3";
  const std::vector<Value> params{std::string(tenant), std::string(image_id), std::string(group)};
  auto counts = db_->Query(
      "SELECT di.state, COUNT(*)" + std::string(kOfGroup) + " GROUP BY di.state", params);
  if (!counts) return std::unexpected(counts.error());
  ImageProgress progress;
  for (const Row& r : *counts) progress.devices[Text(r, 0)] = Number(r, 1);
  auto failures =
      db_->Query("SELECT di.device_id, di.reason" + std::string(kOfGroup) +
                     " AND di.state IN ('failed', 'reverted') ORDER BY di.device_id LIMIT 20",
                 params);
  if (!failures) return std::unexpected(failures.error());
  for (const Row& r : *failures) progress.failures.emplace_back(Text(r, 0), Text(r, 1));
  return progress;
}

Expected<void> Store::MoveRollout(const Deployment& to, std::string_view from_state,
                                  std::int64_t from_stage) {
  auto moved = db_->Query(
      "UPDATE deployments SET state = $1, stage = $2, reason = $3, paused_by = $4 WHERE "
      "tenant_id = $5 AND id = $6 AND state = $7 AND stage = $8 RETURNING id",
      {to.state, to.stage, to.reason, to.paused_by, to.tenant_id, to.id, std::string(from_state),
       from_stage});
  if (!moved) return std::unexpected(moved.error());
  if (!moved->empty()) return {};
  if (auto exists = GetDeployment(to.tenant_id, to.id); !exists) {
    return std::unexpected(exists.error());
  }
  return Fail(StoreErrc::kConflict, "the deployment's rollout moved meanwhile");
}

Expected<void> Store::AdmitDevices(std::string_view deployment, std::int64_t stage,
                                   const std::vector<std::string>& devices, std::int64_t at) {
  for (const auto& device : devices) {
    if (auto ok = Discard(db_->Query("INSERT INTO rollout_devices (deployment_id, device_id, "
                                     "stage, admitted_at) VALUES ($1, $2, $3, $4)",
                                     {std::string(deployment), device, stage, at}));
        !ok) {
      return ok;
    }
  }
  return {};
}

Expected<std::vector<RolloutDevice>> Store::ListRolloutDevices(const Deployment& deployment,
                                                               std::int64_t stage) {
  auto rows = db_->Query(
      "SELECT r.device_id, r.stage FROM rollout_devices r JOIN devices d ON d.id = r.device_id "
      "AND d.tenant_id = $1 AND d.device_group_id = $2 AND d.revoked = 0 WHERE "
      "r.deployment_id = $3 AND ($4 = 0 OR r.stage = $4) ORDER BY r.stage, r.device_id",
      {deployment.tenant_id, deployment.device_group_id, deployment.id, stage});
  if (!rows) return std::unexpected(rows.error());
  std::vector<RolloutDevice> out;
  std::map<std::string, std::size_t, std::less<>> index;
  for (const Row& r : *rows) {
    index.emplace(Text(r, 0), out.size());
    out.push_back({Text(r, 0), Number(r, 1), {}});
  }
  auto reports = db_->Query(
      "SELECT di.device_id, di.image_id, di.state, di.reason, di.updated_at FROM device_images "
      "di JOIN rollout_devices r ON r.device_id = di.device_id AND r.deployment_id = $2 JOIN "
      "deployment_images x ON x.deployment_id = $2 AND x.image_id = di.image_id WHERE "
      "di.tenant_id = $1 AND ($3 = 0 OR r.stage = $3)",
      {deployment.tenant_id, deployment.id, stage});
  if (!reports) return std::unexpected(reports.error());
  for (const Row& r : *reports) {
    if (const auto at = index.find(Text(r, 0)); at != index.end()) {
      out[at->second].images.push_back({Text(r, 1), Text(r, 2), Text(r, 3), Number(r, 4)});
    }
  }
  return out;
}

Expected<bool> Store::Admitted(std::string_view deployment, std::string_view device) {
  auto rows =
      db_->Query("SELECT 1 FROM rollout_devices WHERE deployment_id = $1 AND device_id = $2",
                 {std::string(deployment), std::string(device)});
  if (!rows) return std::unexpected(rows.error());
  return !rows->empty();
}

Expected<std::vector<std::string>> Store::ListGroupDeviceIds(std::string_view tenant,
                                                             std::string_view group) {
  return Map<std::string>(
      db_->Query("SELECT id FROM devices WHERE tenant_id = $1 AND device_group_id = $2 AND "
                 "revoked = 0 ORDER BY id",
                 {std::string(tenant), std::string(group)}),
      [](const Row& r) { return Text(r, 0); });
}

Expected<std::vector<Deployment>> Store::ListDeployments(std::string_view tenant,
                                                         std::string_view group,
                                                         std::int64_t limit) {
  return DeploymentsWhere("device_group_id = $2 ORDER BY sequence DESC LIMIT $3",
                          {std::string(tenant), std::string(group), limit});
}

Expected<std::vector<Deployment>> Store::DeploymentsWhere(std::string_view condition,
                                                          const std::vector<Value>& params) {
  auto rows = db_->Query(
      "SELECT id, tenant_id, device_group_id, created_at, created_by, stages, batch_size, "
      "failure_threshold, state, stage, reason, paused_by FROM deployments "
      "WHERE tenant_id = $1 AND " +
          std::string(condition),
      params);
  if (!rows) return std::unexpected(rows.error());
  std::vector<Deployment> out;
  for (const Row& r : *rows) {
    Deployment d{Text(r, 0),
                 Text(r, 1),
                 Text(r, 2),
                 Number(r, 3),
                 Text(r, 4),
                 {},
                 {SplitPercents(Text(r, 5)), Number(r, 6), Number(r, 7)},
                 Text(r, 8),
                 Number(r, 9),
                 Text(r, 10),
                 Text(r, 11)};
    auto images = db_->Query(
        "SELECT image_id FROM deployment_images WHERE deployment_id = $1 ORDER BY component_id",
        {d.id});
    if (!images) return std::unexpected(images.error());
    for (const Row& image : *images) d.image_ids.push_back(Text(image, 0));
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace aspis::service::store
