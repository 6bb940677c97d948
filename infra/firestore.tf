# Firestore: the (default) database, composite indexes, single-field index
# exemptions and TTL policies.
#
# infra/firestore.indexes.json (Firebase CLI format) is the single source: it
# lists every composite index the code's queries need and the field overrides.
# The same file works with `firebase deploy --only firestore:indexes`.
#
# Queries served by single-field indexes (automatic, keep them on):
#   messages.provider_sid ==        (status callback lookup)
#   messages.campaign_id == ... order by __name__   (paging a campaign's messages)
#   users.<attribute> == ... order by __name__      (segment push-down)
#   campaigns.status ==, campaigns/*/pacing/*/batches.done ==
# Exempted (large or never queried; fewer index writes per message): see the
# fieldOverrides with "indexes": []. TTL (ttl: true) deletes receipts, inbound,
# events, provider_sids, messages (MESSAGE_RETENTION_DAYS after their final
# status) and imports documents (with their chunk markers) after their
# expire_at; the TTL fields are exempted from indexing too (monotonic
# timestamps would hotspot the index).
# Erasure (shared/privacy/erasure.py) queries messages.phone, inbound.phone,
# events.phone and receipts.params.To: those stay indexed.

locals {
  firestore_spec = jsondecode(file("${path.module}/firestore.indexes.json"))

  composite_indexes = {
    for idx in local.firestore_spec.indexes :
    "${idx.collectionGroup}:${join(",", [for f in idx.fields : "${f.fieldPath}:${try(f.order, f.arrayConfig)}"])}" => idx
  }

  field_overrides = {
    for o in local.firestore_spec.fieldOverrides : "${o.collectionGroup}.${o.fieldPath}" => o
  }
}

resource "google_firestore_database" "default" {
  count = var.create_firestore_database ? 1 : 0

  name                    = "(default)"
  location_id             = var.firestore_location
  type                    = "FIRESTORE_NATIVE"
  delete_protection_state = "DELETE_PROTECTION_ENABLED"
  deletion_policy         = "ABANDON"

  depends_on = [google_project_service.apis]
}

resource "google_firestore_index" "composite" {
  for_each = local.composite_indexes

  database    = "(default)"
  collection  = each.value.collectionGroup
  query_scope = try(each.value.queryScope, "COLLECTION")

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path   = fields.value.fieldPath
      order        = try(fields.value.order, null)
      array_config = try(fields.value.arrayConfig, null)
    }
  }

  depends_on = [google_firestore_database.default, google_project_service.apis]
}

resource "google_firestore_field" "override" {
  for_each = local.field_overrides

  database   = "(default)"
  collection = each.value.collectionGroup
  field      = each.value.fieldPath

  # TTL policy: documents are deleted (typically within 24 h) after expire_at.
  dynamic "ttl_config" {
    for_each = try(each.value.ttl, false) ? [true] : []
    content {}
  }

  # An empty index_config removes the field's single-field indexes.
  dynamic "index_config" {
    for_each = try([each.value.indexes], [])
    content {
      dynamic "indexes" {
        for_each = index_config.value
        content {
          order        = try(indexes.value.order, null)
          array_config = try(indexes.value.arrayConfig, null)
          query_scope  = try(indexes.value.queryScope, "COLLECTION")
        }
      }
    }
  }

  depends_on = [google_firestore_database.default, google_project_service.apis]
}
