#include "agent/view.h"

#include "platform/err.h"
#include "sync/change.h"

int view_load(store *st, const char *key, struct plan *out, int *n_pending, json_t *changed_paths)
{
    *n_pending = 0;
    int rc = store_plan_get(st, key, out);
    if (rc != CMC_OK || store_session_of(st)->role != STORE_ROLE_CLINICIAN)
        return rc;
    struct store_pending *pend = NULL;
    size_t n = 0;
    if ((rc = store_pending_list(st, out->plan_id, &pend, &n)) != CMC_OK)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        struct plan_change c;
        plan_change_init(&c);
        rc = plan_change_unpack(pend[i].change, pend[i].change_len, &c);
        if (rc == CMC_OK)
            rc = plan_change_apply(out, &c);
        for (size_t k = 0; rc == CMC_OK && changed_paths != NULL && k < c.n_ops; k++)
            if (json_array_append_new(changed_paths, json_string(c.ops[k].field->path)) != 0)
                rc = cmc_fail(CMC_ERR_NOMEM, "out of memory listing the changed fields");
        plan_change_free(&c);
        if (rc != CMC_OK)
            break;
        (*n_pending)++;
    }
    store_pending_free(pend, n);
    if (rc == CMC_OK)
        return CMC_OK;
fail:
    plan_free(out);
    return rc;
}
