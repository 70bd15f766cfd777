//! The SQL both adapters run, and the [`AdminStore`](admin_provisioner_core::store::AdminStore) /
//! [`SagaLog`](admin_provisioner_core::store::SagaLog) implementations built from it.
//!
//! The schemas of the two databases have the same tables, columns and constraint names, and
//! [`DbId`](crate::types::DbId) / [`DbTime`](crate::types::DbTime) encode for either, so one text of SQL
//! (with `$n` placeholders, which SQLite also understands) serves both. `sqlx` executors cannot be
//! abstracted over the database without a thicket of higher-ranked bounds, so the trait implementations
//! are written once here as a macro and instantiated per adapter with concrete types: the two adapters
//! cannot drift apart in semantics. An adapter provides `fn pool(&self) -> &Pool<DB>` and
//! `async fn begin_write(&self) -> Result<Transaction<'static, DB>, sqlx::Error>` (SQLite takes the write
//! lock up front with `BEGIN IMMEDIATE` so that concurrent writers queue instead of failing).

/// `users JOIN admin_info` columns in [`AdminRow`](crate::types::AdminRow) order, with the `FROM`.
macro_rules! select_admin {
    () => {
        "SELECT u.id, u.email, u.email_normalized, u.cognito_username, u.cognito_sub, u.status, \
         u.created_at, u.updated_at, a.invited_by, a.invited_at, a.invite_expires_at, a.invites_sent, \
         a.last_invite_sent_at, a.invite_delivered, a.accepted_at, u.disabled_at, u.external_id, u.scim_profile, \
         u.sessions_valid_after, u.mfa_enrolled_at \
         FROM users u JOIN admin_info a ON a.user_id = u.id"
    };
}

/// `sagas` columns in [`SagaRow`](crate::types::SagaRow) order.
macro_rules! saga_columns {
    () => {
        "id, kind, actor, email, email_normalized, user_id, cognito_username, cognito_sub, \
         identity_created_by_saga, invite_delivered, state, attempts, last_error, request_id, \
         started_at, updated_at, owner, lease_expires_at, scim_user_name, scim_external_id, scim_profile"
    };
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` prefix pattern and appends the `%`.
pub(crate) fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The `WHERE` clauses of one page of stored admins, with `$n` placeholders numbered from 1, in the order
/// [`bind_admin_page`](crate::sql) binds them: prefix, status time, keyset time, keyset id, limit.
pub(crate) fn admin_page_sql(filter: &::admin_provisioner_core::pages::StoredAdminFilter, keyset: bool) -> String {
    use ::admin_provisioner_core::domain::InviteStatus;
    let mut sql = String::from(select_admin!());
    let mut clauses: Vec<String> = Vec::new();
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    if filter.email_prefix.is_some() {
        clauses.push(format!("u.email_normalized LIKE {} ESCAPE '\\'", next()));
    }
    let active = "(u.status = 'active' OR a.accepted_at IS NOT NULL)";
    let enabled = "u.disabled_at IS NULL";
    match filter.status {
        Some(InviteStatus::Active) => clauses.push(format!("{enabled} AND {active}")),
        Some(InviteStatus::Disabled) => clauses.push("u.disabled_at IS NOT NULL".to_string()),
        Some(InviteStatus::Invited) => clauses.push(format!(
            "{enabled} AND NOT {active} AND a.invite_expires_at > {}",
            next()
        )),
        Some(InviteStatus::Expired) => clauses.push(format!(
            "{enabled} AND NOT {active} AND a.invite_expires_at <= {}",
            next()
        )),
        Some(InviteStatus::Pending | InviteStatus::Failed) => clauses.push("1 = 0".to_string()),
        None => {}
    }
    if keyset {
        let (t, t2, id) = (next(), next(), next());
        clauses.push(format!("(u.created_at > {t} OR (u.created_at = {t2} AND u.id > {id}))"));
    }
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    sql.push_str(&format!(" ORDER BY u.created_at, u.id LIMIT {}", next()));
    sql
}

/// Implements `AdminStore` and `SagaLog` for `$store` over database `$db`; `$backend` names it in spans;
/// `$actor_is_user` is the SQL condition joining `audit_log l` to `users u` (the actor column is text).
macro_rules! impl_sql_store {
    ($store:ty, $db:ty, $backend:literal, $actor_is_user:literal) => {
        const _: () = {
            use ::admin_provisioner_core::domain::{AdminRecord, UserId};
            use ::admin_provisioner_core::store::{
                AdminReads, AdminWrites, AuditEntry, AuditEvent, AuditLog, IdempotencyBegin, IdempotencyKeys, NewAdmin, SagaLog, SagaRecord, SagaState,
                SagaUpdate, StoreError, StoredResponse,
            };
            use ::chrono::{DateTime, Utc};
            use ::uuid::Uuid;
            use $crate::error::{is_foreign_key_violation, map_err, unique_violation, Unique};
            use $crate::types::{AdminRow, AuditRow, DbId, DbTime, IdempotencyRow, SagaRow};

            type Conn = <$db as ::sqlx::Database>::Connection;

            async fn admin_by_id(conn: &mut Conn, id: UserId) -> Result<Option<AdminRecord>, StoreError> {
                ::sqlx::query_as::<_, AdminRow>(concat!($crate::sql::select_admin!(), " WHERE u.id = $1"))
                    .bind(DbId::from(id))
                    .fetch_optional(conn)
                    .await
                    .map_err(map_err)?
                    .map(AdminRecord::try_from)
                    .transpose()
            }

            /// The admin selected by `sql` (`select_admin!()` plus a `WHERE` on one `u.` column, bound to `$1`).
            async fn admin_where(
                pool: &::sqlx::Pool<$db>,
                sql: &'static str,
                value: &str,
            ) -> Result<Option<AdminRecord>, StoreError> {
                ::sqlx::query_as::<_, AdminRow>(sql)
                    .bind(value)
                    .fetch_optional(pool)
                    .await
                    .map_err(map_err)?
                    .map(AdminRecord::try_from)
                    .transpose()
            }

            async fn insert_audit(conn: &mut Conn, audit: &AuditEntry) -> Result<(), StoreError> {
                ::sqlx::query(
                    "INSERT INTO audit_log (actor, action, target, outcome, request_id, at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(audit.actor.audit_name())
                .bind(audit.action.as_str())
                .bind(&audit.target)
                .bind(&audit.outcome)
                .bind(&audit.request_id)
                .bind(DbTime::new(audit.at))
                .execute(conn)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            /// Writes one lifecycle event (`crate::events`) about `record` in the caller's transaction.
            async fn insert_event(
                conn: &mut Conn,
                kind: &str,
                record: &AdminRecord,
                audit: &AuditEntry,
                now: DbTime,
            ) -> Result<(), StoreError> {
                ::sqlx::query(
                    "INSERT INTO events (type, admin_id, email, data, occurred_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(kind)
                .bind(DbId::from(record.user.id))
                .bind(&record.user.email_normalized)
                .bind($crate::events::admin_event_data(record, audit))
                .bind(now)
                .execute(conn)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            /// Moves saga `id` to `state` (a no-op if it is there already). A missing saga is a bug in
            /// the caller, not a missing admin, hence `Other` rather than `NotFound`.
            ///
            /// Completing a saga that was already undone (or is being undone) is refused, so a slow saga
            /// can never write records after recovery compensated it: the transaction rolls back.
            async fn advance_saga(conn: &mut Conn, id: Uuid, state: SagaState, now: DbTime) -> Result<(), StoreError> {
                advance_saga_linking(conn, id, state, now, None).await
            }

            /// [`advance_saga`], also recording `link`'s Cognito user as the saga's own (the records'
            /// transaction completing a provisioning).
            async fn advance_saga_linking(
                conn: &mut Conn,
                id: Uuid,
                state: SagaState,
                now: DbTime,
                link: Option<&NewAdmin>,
            ) -> Result<(), StoreError> {
                if state == SagaState::Completed {
                    let current: Option<String> = ::sqlx::query_scalar("SELECT state FROM sagas WHERE id = $1")
                        .bind(DbId(id))
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(map_err)?;
                    if let Some(current) = current {
                        if matches!(
                            current.as_str(),
                            "compensating" | "compensated" | "aborted" | "stuck"
                        ) {
                            return Err(StoreError::Other(format!(
                                "saga {id} is {current}: it was undone, so its records are not written"
                            )));
                        }
                    }
                }
                let changed = match link {
                    None => ::sqlx::query(
                        "UPDATE sagas SET state = $2, updated_at = $3 WHERE id = $1 AND state <> $2",
                    )
                    .bind(DbId(id))
                    .bind(state.as_str())
                    .bind(now),
                    // The Cognito user the records link to is logged as the saga's own in the same write
                    // (the saga logs nothing between its AdminCreateUser and this transaction).
                    Some(admin) => ::sqlx::query(
                        "UPDATE sagas SET state = $2, updated_at = $3, cognito_username = $4, cognito_sub = $5, \
                             identity_created_by_saga = $6, invite_delivered = $7 WHERE id = $1 AND state <> $2",
                    )
                    .bind(DbId(id))
                    .bind(state.as_str())
                    .bind(now)
                    .bind(&admin.cognito_username)
                    .bind(&admin.cognito_sub)
                    .bind(true)
                    .bind(admin.invite_delivered),
                }
                .execute(&mut *conn)
                .await
                .map_err(map_err)?
                .rows_affected();
                if changed == 0 {
                    let exists: Option<i32> = ::sqlx::query_scalar("SELECT 1 FROM sagas WHERE id = $1")
                        .bind(DbId(id))
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(map_err)?;
                    if exists.is_none() {
                        return Err(StoreError::Other(format!("saga {id} does not exist")));
                    }
                }
                Ok(())
            }

            /// One transaction of `insert_admin`; see the trait's docs. `Ok(None)`: a concurrent call
            /// inserted the same user id first, so try again (the idempotent path will find its row).
            async fn insert_admin_once(
                store: &$store,
                admin: &NewAdmin,
                audit: &AuditEntry,
                complete_saga: Option<Uuid>,
            ) -> Result<Option<AdminRecord>, StoreError> {
                let mut tx = store.begin_write().await.map_err(map_err)?;
                let now = store.now();

                if let Some(existing) = admin_by_id(&mut tx, admin.id).await? {
                    if existing.user.cognito_username != admin.cognito_username {
                        return Err(StoreError::Other(format!(
                            "user id {} already belongs to another admin",
                            admin.id
                        )));
                    }
                    if let Some(saga) = complete_saga {
                        advance_saga_linking(&mut tx, saga, SagaState::Completed, now, Some(admin)).await?;
                    }
                    tx.commit().await.map_err(map_err)?;
                    return Ok(Some(existing));
                }

                let inserted = ::sqlx::query(
                    "INSERT INTO users (id, email, email_normalized, cognito_username, cognito_sub, status, \
                         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'invited', $6, $6)",
                )
                .bind(DbId::from(admin.id))
                .bind(&admin.email)
                .bind(&admin.email_normalized)
                .bind(&admin.cognito_username)
                .bind(&admin.cognito_sub)
                .bind(now)
                .execute(&mut *tx)
                .await;
                if let Err(e) = inserted {
                    match unique_violation(&e) {
                        Some(Unique::UserId) => return Ok(None),
                        // When both the e-mail and the Cognito user are taken, the e-mail wins, whichever
                        // index the database happened to check first (SQLite checks the newest first).
                        Some(Unique::CognitoUsername | Unique::CognitoSub) => {
                            drop(tx);
                            let email_taken: Option<i32> =
                                ::sqlx::query_scalar("SELECT 1 FROM users WHERE email_normalized = $1")
                                    .bind(&admin.email_normalized)
                                    .fetch_optional(store.pool())
                                    .await
                                    .map_err(map_err)?;
                            if email_taken.is_some() {
                                return Err(StoreError::EmailTaken);
                            }
                            return Err(StoreError::CognitoUserTaken);
                        }
                        _ => return Err(map_err(e)),
                    }
                }

                let invited_at = DbTime::new(admin.invited_at);
                ::sqlx::query(
                    "INSERT INTO admin_info (user_id, invited_by, invited_at, invite_expires_at, invites_sent, \
                         last_invite_sent_at, invite_delivered, accepted_at) \
                         VALUES ($1, $2, $3, $4, 1, $3, $5, NULL)",
                )
                .bind(DbId::from(admin.id))
                .bind(admin.invited_by.map(DbId::from))
                .bind(invited_at)
                .bind(DbTime::new(admin.invite_expires_at))
                .bind(admin.invite_delivered)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        StoreError::Other("the inviting admin does not exist".to_string())
                    } else {
                        map_err(e)
                    }
                })?;

                insert_audit(&mut tx, audit).await?;
                if let Some(saga) = complete_saga {
                    // A SCIM create: the SCIM attributes its intent carries, in the same transaction (the
                    // unique index on `users.scim_user_name` refuses a userName another admin holds).
                    ::sqlx::query(
                        "UPDATE users SET \
                             scim_user_name = (SELECT s.scim_user_name FROM sagas s WHERE s.id = $2), \
                             external_id = (SELECT s.scim_external_id FROM sagas s WHERE s.id = $2), \
                             scim_profile = (SELECT s.scim_profile FROM sagas s WHERE s.id = $2) \
                         WHERE id = $1 AND EXISTS \
                             (SELECT 1 FROM sagas s WHERE s.id = $2 AND s.scim_user_name IS NOT NULL)",
                    )
                    .bind(DbId::from(admin.id))
                    .bind(DbId(saga))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    advance_saga_linking(&mut tx, saga, SagaState::Completed, now, Some(admin)).await?;
                }
                let record = admin_by_id(&mut tx, admin.id)
                    .await?
                    .ok_or_else(|| StoreError::Other("inserted admin vanished".to_string()))?;
                insert_event(&mut tx, $crate::events::ADMIN_INVITED, &record, audit, now).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(Some(record))
            }

            #[::async_trait::async_trait]
            impl AdminReads for $store {
                #[::tracing::instrument(skip_all, fields(db = $backend))]
                async fn ping(&self) -> Result<(), StoreError> {
                    ::sqlx::query("SELECT 1")
                        .execute(self.pool())
                        .await
                        .map_err(map_err)?;
                    Ok(())
                }

                #[::tracing::instrument(skip_all, fields(db = $backend))]
                async fn find_admin_by_email(&self, email_normalized: &str) -> Result<Option<AdminRecord>, StoreError> {
                    admin_where(self.pool(), concat!($crate::sql::select_admin!(), " WHERE u.email_normalized = $1"), email_normalized).await
                }

                #[::tracing::instrument(skip_all, fields(db = $backend))]
                async fn find_admins_by_scim_key(
                    &self,
                    key: &::admin_provisioner_core::store::ScimKey,
                ) -> Result<Vec<AdminRecord>, StoreError> {
                    use ::admin_provisioner_core::store::ScimKey;
                    let (sql, value) = match key {
                        ScimKey::UserName(v) => (
                            concat!($crate::sql::select_admin!(), " WHERE u.email_normalized = $1 OR u.scim_user_name = $1 ORDER BY u.created_at, u.id LIMIT 10"),
                            v,
                        ),
                        ScimKey::ExternalId(v) => (
                            concat!($crate::sql::select_admin!(), " WHERE u.external_id = $1 ORDER BY u.created_at, u.id LIMIT 10"),
                            v,
                        ),
                    };
                    let rows = ::sqlx::query_as::<_, AdminRow>(sql)
                        .bind(value)
                        .fetch_all(self.pool())
                        .await
                        .map_err(map_err)?;
                    rows.into_iter().map(AdminRecord::try_from).collect()
                }

                #[::tracing::instrument(skip_all, fields(db = $backend, user_id = %id))]
                async fn get_admin(&self, id: UserId) -> Result<Option<AdminRecord>, StoreError> {
                    let mut conn = self.pool().acquire().await.map_err(map_err)?;
                    admin_by_id(&mut conn, id).await
                }

                #[::tracing::instrument(skip_all, fields(db = $backend))]
                async fn find_admin_by_cognito_username(
                    &self,
                    username: &str,
                ) -> Result<Option<AdminRecord>, StoreError> {
                    admin_where(self.pool(), concat!($crate::sql::select_admin!(), " WHERE u.cognito_username = $1"), username).await
                }

                #[::tracing::instrument(skip_all, fields(db = $backend))]
                async fn find_admin_by_cognito_sub(&self, sub: &str) -> Result<Option<AdminRecord>, StoreError> {
                    admin_where(self.pool(), concat!($crate::sql::select_admin!(), " WHERE u.cognito_sub = $1"), sub).await
                }

                #[::tracing::instrument(skip_all, fields(db = $backend))]
                async fn list_admins(&self) -> Result<Vec<AdminRecord>, StoreError> {
                    ::sqlx::query_as::<_, AdminRow>(concat!(
                        $crate::sql::select_admin!(),
                        " ORDER BY u.created_at, u.id"
                    ))
                    .fetch_all(self.pool())
                    .await
                    .map_err(map_err)?
                    .into_iter()
                    .map(AdminRecord::try_from)
                    .collect()
                }

                #[::tracing::instrument(skip_all, fields(db = $backend))]
                async fn count_active_admins(&self) -> Result<i64, StoreError> {
                    ::sqlx::query_scalar::<_, i64>(
                        "SELECT COUNT(*) FROM users u JOIN admin_info a ON a.user_id = u.id WHERE u.status = 'active' AND u.disabled_at IS NULL",
                    )
                    .fetch_one(self.pool())
                    .await
                    .map_err(map_err)
                }

                #[::tracing::instrument(skip_all, fields(db = $backend, limit = limit))]
                async fn list_admins_page(
                    &self,
                    filter: &::admin_provisioner_core::pages::StoredAdminFilter,
                    after: Option<(DateTime<Utc>, UserId)>,
                    limit: i64,
                ) -> Result<Vec<AdminRecord>, StoreError> {
                    use ::admin_provisioner_core::domain::InviteStatus;
                    let sql = $crate::sql::admin_page_sql(filter, after.is_some());
                    let mut q = ::sqlx::query_as::<_, AdminRow>(&sql);
                    if let Some(prefix) = &filter.email_prefix {
                        q = q.bind($crate::sql::like_prefix(prefix));
                    }
                    if matches!(filter.status, Some(InviteStatus::Invited | InviteStatus::Expired)) {
                        q = q.bind(DbTime::new(filter.now));
                    }
                    if let Some((t, id)) = after {
                        q = q.bind(DbTime::new(t)).bind(DbTime::new(t)).bind(DbId::from(id));
                    }
                    q.bind(limit.max(0))
                        .fetch_all(self.pool())
                        .await
                        .map_err(map_err)?
                        .into_iter()
                        .map(AdminRecord::try_from)
                        .collect()
                }

                #[::tracing::instrument(skip_all, fields(db = $backend))]
                async fn count_admins_by_status(&self, now: DateTime<Utc>) -> Result<(i64, i64, i64), StoreError> {
                    let (active, invited, expired): (Option<i64>, Option<i64>, Option<i64>) = ::sqlx::query_as(
                        "SELECT \
                         SUM(CASE WHEN u.disabled_at IS NULL AND (u.status = 'active' OR a.accepted_at IS NOT NULL) THEN 1 ELSE 0 END), \
                         SUM(CASE WHEN u.disabled_at IS NULL AND u.status <> 'active' AND a.accepted_at IS NULL AND a.invite_expires_at > $1 THEN 1 ELSE 0 END), \
                         SUM(CASE WHEN u.disabled_at IS NULL AND u.status <> 'active' AND a.accepted_at IS NULL AND a.invite_expires_at <= $1 THEN 1 ELSE 0 END) \
                         FROM users u JOIN admin_info a ON a.user_id = u.id",
                    )
                    .bind(DbTime::new(now))
                    .fetch_one(self.pool())
                    .await
                    .map_err(map_err)?;
                    Ok((active.unwrap_or(0), invited.unwrap_or(0), expired.unwrap_or(0)))
                }
            }

            #[::async_trait::async_trait]
            impl AdminWrites for $store {
                #[::tracing::instrument(skip_all, fields(db = $backend, user_id = %admin.id, saga_id = ?complete_saga))]
                async fn insert_admin(
                    &self,
                    admin: NewAdmin,
                    audit: AuditEntry,
                    complete_saga: Option<Uuid>,
                ) -> Result<AdminRecord, StoreError> {
                    // A concurrent call with the same id loses on the primary key; its second attempt then
                    // finds the winner's row and takes the idempotent path.
                    for _ in 0..2 {
                        if let Some(record) = insert_admin_once(self, &admin, &audit, complete_saga).await? {
                            return Ok(record);
                        }
                    }
                    Err(StoreError::Other(format!(
                        "user id {} is being inserted concurrently",
                        admin.id
                    )))
                }

                #[::tracing::instrument(skip_all, fields(db = $backend, user_id = %id))]
                async fn mark_accepted(
                    &self,
                    id: UserId,
                    at: DateTime<Utc>,
                    audit: AuditEntry,
                ) -> Result<AdminRecord, StoreError> {
                    let mut tx = self.begin_write().await.map_err(map_err)?;
                    let at = DbTime::new(at);
                    let changed = ::sqlx::query(
                        "UPDATE admin_info SET accepted_at = COALESCE(accepted_at, $2) WHERE user_id = $1",
                    )
                    .bind(DbId::from(id))
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                    if changed == 0 {
                        return Err(StoreError::NotFound);
                    }
                    // Only the change from `invited` is an activation (and an event); a repeat is a no-op.
                    let activated = ::sqlx::query(
                        "UPDATE users SET status = 'active', updated_at = $2 WHERE id = $1 AND status <> 'active'",
                    )
                    .bind(DbId::from(id))
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected()
                        == 1;
                    insert_audit(&mut tx, &audit).await?;
                    let record = admin_by_id(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
                    if activated {
                        insert_event(&mut tx, $crate::events::ADMIN_ACTIVATED, &record, &audit, self.now()).await?;
                    }
                    tx.commit().await.map_err(map_err)?;
                    Ok(record)
                }

                #[::tracing::instrument(skip_all, fields(db = $backend, user_id = %id, delivered = delivered))]
                async fn record_invite_sent(
                    &self,
                    id: UserId,
                    sent_at: DateTime<Utc>,
                    expires_at: DateTime<Utc>,
                    delivered: bool,
                    audit: AuditEntry,
                ) -> Result<AdminRecord, StoreError> {
                    let mut tx = self.begin_write().await.map_err(map_err)?;
                    let changed = ::sqlx::query(
                        "UPDATE admin_info SET invites_sent = invites_sent + 1, last_invite_sent_at = $2, \
                         invite_expires_at = $3, invite_delivered = $4 WHERE user_id = $1",
                    )
                    .bind(DbId::from(id))
                    .bind(DbTime::new(sent_at))
                    .bind(DbTime::new(expires_at))
                    .bind(delivered)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                    if changed == 0 {
                        return Err(StoreError::NotFound);
                    }
                    insert_audit(&mut tx, &audit).await?;
                    let record = admin_by_id(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
                    insert_event(&mut tx, $crate::events::ADMIN_INVITE_RESENT, &record, &audit, self.now()).await?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(record)
                }

                #[::tracing::instrument(skip_all, fields(db = $backend, user_id = %id, saga_id = ?saga))]
                async fn delete_admin(
                    &self,
                    id: UserId,
                    audit: AuditEntry,
                    saga: Option<Uuid>,
                ) -> Result<(), StoreError> {
                    let mut tx = self.begin_write().await.map_err(map_err)?;
                    self.lock_admin_set(&mut tx).await.map_err(map_err)?;
                    // Never remove the last active admin (checked inside the transaction, under the lock).
                    let status: Option<String> = ::sqlx::query_scalar(
                        "SELECT status FROM users WHERE id = $1 AND disabled_at IS NULL",
                    )
                    .bind(DbId::from(id))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    if status.as_deref() == Some("active") {
                        let active: i64 = ::sqlx::query_scalar(
                            "SELECT COUNT(*) FROM users WHERE status = 'active' AND disabled_at IS NULL",
                        )
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(map_err)?;
                        if active <= 1 {
                            return Err(StoreError::LastAdmin);
                        }
                    }
                    // The records as they were, for the `admin.removed` event.
                    let removed = admin_by_id(&mut tx, id).await?;
                    let info = ::sqlx::query("DELETE FROM admin_info WHERE user_id = $1")
                        .bind(DbId::from(id))
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?
                        .rows_affected();
                    // Other admins' `invited_by` pointing here become NULL (ON DELETE SET NULL).
                    let user = ::sqlx::query("DELETE FROM users WHERE id = $1")
                        .bind(DbId::from(id))
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?
                        .rows_affected();
                    if info == 0 && user == 0 {
                        return Err(StoreError::NotFound);
                    }
                    insert_audit(&mut tx, &audit).await?;
                    if let Some(saga) = saga {
                        advance_saga(&mut tx, saga, SagaState::IdentityPendingDelete, self.now()).await?;
                    }
                    if let Some(removed) = &removed {
                        insert_event(&mut tx, $crate::events::ADMIN_REMOVED, removed, &audit, self.now()).await?;
                    }
                    tx.commit().await.map_err(map_err)
                }

                #[::tracing::instrument(skip_all, fields(db = $backend, user_id = %id, disable = disabled_at.is_some()))]
                async fn set_admin_disabled(
                    &self,
                    id: UserId,
                    disabled_at: Option<DateTime<Utc>>,
                    audit: AuditEntry,
                    saga: Option<(Uuid, SagaState)>,
                ) -> Result<AdminRecord, StoreError> {
                    let mut tx = self.begin_write().await.map_err(map_err)?;
                    self.lock_admin_set(&mut tx).await.map_err(map_err)?;
                    let before = admin_by_id(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
                    let changed = before.user.disabled_at.is_some() != disabled_at.is_some();
                    if changed {
                        if disabled_at.is_some() && before.user.is_active_admin() {
                            // Never disable the last active admin (checked under the lock, like a delete).
                            let active: i64 = ::sqlx::query_scalar(
                                "SELECT COUNT(*) FROM users WHERE status = 'active' AND disabled_at IS NULL",
                            )
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(map_err)?;
                            if active <= 1 {
                                return Err(StoreError::LastAdmin);
                            }
                        }
                        let now = self.now();
                        // A disable ends the admin's sessions in the same write (never moving the epoch
                        // back); an enable leaves the epoch as it is.
                        let epoch = match disabled_at {
                            Some(at) => before.user.sessions_valid_after.max(Some(at)),
                            None => before.user.sessions_valid_after,
                        };
                        ::sqlx::query(
                            "UPDATE users SET disabled_at = $2, updated_at = $3, sessions_valid_after = $4 WHERE id = $1",
                        )
                        .bind(DbId::from(id))
                        .bind(disabled_at.map(DbTime::new))
                        .bind(now)
                        .bind(epoch.map(DbTime::new))
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    }
                    insert_audit(&mut tx, &audit).await?;
                    if let Some((saga, state)) = saga {
                        advance_saga(&mut tx, saga, state, self.now()).await?;
                    }
                    let record = admin_by_id(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
                    if changed {
                        let kind = if disabled_at.is_some() {
                            $crate::events::ADMIN_DISABLED
                        } else {
                            $crate::events::ADMIN_ENABLED
                        };
                        insert_event(&mut tx, kind, &record, &audit, self.now()).await?;
                    }
                    tx.commit().await.map_err(map_err)?;
                    Ok(record)
                }

                #[::tracing::instrument(skip_all, fields(db = $backend, user_id = %id))]
                async fn set_mfa_enrolled(&self, id: UserId, at: Option<DateTime<Utc>>) -> Result<AdminRecord, StoreError> {
                    let mut tx = self.begin_write().await.map_err(map_err)?;
                    let before = admin_by_id(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
                    if at.is_some() && before.user.mfa_enrolled_at.is_some() {
                        return Ok(before);
                    }
                    ::sqlx::query("UPDATE users SET mfa_enrolled_at = $2 WHERE id = $1")
                        .bind(DbId::from(id))
                        .bind(at.map(DbTime::new))
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    let record = admin_by_id(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(record)
                }

                #[::tracing::instrument(skip_all, fields(db = $backend, user_id = %id))]
                async fn end_sessions(&self, id: UserId, at: DateTime<Utc>) -> Result<AdminRecord, StoreError> {
                    let mut tx = self.begin_write().await.map_err(map_err)?;
                    let before = admin_by_id(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
                    let at = DbTime::new(at);
                    if before.user.sessions_valid_after.is_some_and(|e| e >= at.0) {
                        // A later epoch is already stored (another replica's clock): keep it.
                        return Ok(before);
                    }
                    ::sqlx::query("UPDATE users SET sessions_valid_after = $2 WHERE id = $1")
                        .bind(DbId::from(id))
                        .bind(at)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    let record = admin_by_id(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(record)
                }

                #[::tracing::instrument(skip_all, fields(db = $backend, user_id = %id))]
                async fn set_scim_attributes(
                    &self,
                    id: UserId,
                    external_id: Option<String>,
                    user_name: Option<String>,
                    scim_profile: Option<String>,
                ) -> Result<AdminRecord, StoreError> {
                    let mut tx = self.begin_write().await.map_err(map_err)?;
                    let changed = ::sqlx::query(
                        "UPDATE users SET external_id = $2, scim_user_name = $3, scim_profile = $4, updated_at = $5 WHERE id = $1",
                    )
                        .bind(DbId::from(id))
                        .bind(&external_id)
                        .bind(&user_name)
                        .bind(&scim_profile)
                        .bind(self.now())
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?
                        .rows_affected();
                    if changed == 0 {
                        return Err(StoreError::NotFound);
                    }
                    let record = admin_by_id(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(record)
                }
            }

            #[::async_trait::async_trait]
            impl AuditLog for $store {
                #[::tracing::instrument(skip_all, fields(db = $backend, action = audit.action.as_str()))]
                async fn append_audit(&self, audit: AuditEntry) -> Result<(), StoreError> {
                    let mut conn = self.pool().acquire().await.map_err(map_err)?;
                    insert_audit(&mut conn, &audit).await
                }

                #[::tracing::instrument(skip_all, fields(db = $backend, limit = limit))]
                async fn list_audit(&self, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
                    ::sqlx::query_as::<_, AuditRow>(
                        "SELECT id, actor, action, target, outcome, request_id, at FROM audit_log \
                         ORDER BY id DESC LIMIT $1",
                    )
                    .bind(limit.max(0))
                    .fetch_all(self.pool())
                    .await
                    .map_err(map_err)?
                    .into_iter()
                    .map(AuditEvent::try_from)
                    .collect()
                }

                #[::tracing::instrument(skip_all, fields(db = $backend, limit = limit))]
                async fn list_audit_page(
                    &self,
                    before_id: Option<i64>,
                    limit: i64,
                ) -> Result<Vec<(AuditEvent, Option<String>)>, StoreError> {
                    #[derive(::sqlx::FromRow)]
                    struct Row {
                        #[sqlx(flatten)]
                        event: AuditRow,
                        actor_email: Option<String>,
                    }
                    ::sqlx::query_as::<_, Row>(concat!(
                        "SELECT l.id, l.actor, l.action, l.target, l.outcome, l.request_id, l.at, \
                         u.email AS actor_email FROM audit_log l LEFT JOIN users u ON ",
                        $actor_is_user,
                        " WHERE l.id < $1 ORDER BY l.id DESC LIMIT $2"
                    ))
                    .bind(before_id.unwrap_or(i64::MAX))
                    .bind(limit.max(0))
                    .fetch_all(self.pool())
                    .await
                    .map_err(map_err)?
                    .into_iter()
                    .map(|r| Ok((AuditEvent::try_from(r.event)?, r.actor_email)))
                    .collect()
                }
            }

            #[::async_trait::async_trait]
            impl IdempotencyKeys for $store {
                #[::tracing::instrument(skip_all, fields(db = $backend, scope = scope))]
                async fn idempotency_begin(
                    &self,
                    scope: &str,
                    key: &str,
                    request_hash: &str,
                ) -> Result<IdempotencyBegin, StoreError> {
                    // Loops only if the key is abandoned between our insert attempt and our read.
                    for _ in 0..3 {
                        let claimed = ::sqlx::query(
                            "INSERT INTO idempotency_keys (scope, key, request_hash, status, body, created_at) \
                             VALUES ($1, $2, $3, NULL, NULL, $4) ON CONFLICT (scope, key) DO NOTHING",
                        )
                        .bind(scope)
                        .bind(key)
                        .bind(request_hash)
                        .bind(self.now())
                        .execute(self.pool())
                        .await
                        .map_err(map_err)?
                        .rows_affected();
                        if claimed == 1 {
                            return Ok(IdempotencyBegin::Started);
                        }
                        // A claim that never completed (its process died) is taken over after a while by a
                        // retry of the same request, instead of answering "in progress" forever.
                        let taken_over = ::sqlx::query(
                            "UPDATE idempotency_keys SET created_at = $4 \
                             WHERE scope = $1 AND key = $2 AND request_hash = $3 AND status IS NULL \
                             AND created_at < $5",
                        )
                        .bind(scope)
                        .bind(key)
                        .bind(request_hash)
                        .bind(self.now())
                        .bind(DbTime::new(self.now().0 - $crate::sql::IDEMPOTENCY_CLAIM_TTL))
                        .execute(self.pool())
                        .await
                        .map_err(map_err)?
                        .rows_affected();
                        if taken_over == 1 {
                            return Ok(IdempotencyBegin::Started);
                        }
                        let row = ::sqlx::query_as::<_, IdempotencyRow>(
                            "SELECT request_hash, status, body FROM idempotency_keys WHERE scope = $1 AND key = $2",
                        )
                        .bind(scope)
                        .bind(key)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(map_err)?;
                        if let Some(row) = row {
                            let response = row.response()?;
                            return Ok(IdempotencyBegin::Existing {
                                request_hash: row.request_hash,
                                response,
                            });
                        }
                    }
                    Err(StoreError::Unavailable(
                        "idempotency key is contended; retry".to_string(),
                    ))
                }

                #[::tracing::instrument(skip_all, fields(db = $backend, scope = scope, status = response.status))]
                async fn idempotency_complete(
                    &self,
                    scope: &str,
                    key: &str,
                    response: StoredResponse,
                ) -> Result<(), StoreError> {
                    let changed = ::sqlx::query(
                        "UPDATE idempotency_keys SET status = $3, body = $4 WHERE scope = $1 AND key = $2",
                    )
                    .bind(scope)
                    .bind(key)
                    .bind(i32::from(response.status))
                    .bind(&response.body)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                    if changed == 0 {
                        return Err(StoreError::NotFound);
                    }
                    Ok(())
                }

                #[::tracing::instrument(skip_all, fields(db = $backend, scope = scope))]
                async fn idempotency_abandon(&self, scope: &str, key: &str) -> Result<(), StoreError> {
                    ::sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status IS NULL")
                        .bind(scope)
                        .bind(key)
                        .execute(self.pool())
                        .await
                        .map_err(map_err)?;
                    Ok(())
                }
            }

            #[derive(::sqlx::FromRow)]
            struct ScimTokenRow {
                name: String,
                created_by: String,
                created_at: DbTime,
                revoked_at: Option<DbTime>,
                last_used_at: Option<DbTime>,
            }

            impl From<ScimTokenRow> for ::admin_provisioner_core::store::ScimToken {
                fn from(r: ScimTokenRow) -> Self {
                    Self {
                        name: r.name,
                        created_by: r.created_by,
                        created_at: r.created_at.0,
                        revoked_at: r.revoked_at.map(|t| t.0),
                        last_used_at: r.last_used_at.map(|t| t.0),
                    }
                }
            }

            async fn scim_token_by_name(
                conn: &mut Conn,
                name: &str,
            ) -> Result<Option<::admin_provisioner_core::store::ScimToken>, StoreError> {
                Ok(::sqlx::query_as::<_, ScimTokenRow>(
                    "SELECT name, created_by, created_at, revoked_at, last_used_at FROM scim_tokens WHERE name = $1",
                )
                .bind(name)
                .fetch_optional(conn)
                .await
                .map_err(map_err)?
                .map(Into::into))
            }

            #[::async_trait::async_trait]
            impl ::admin_provisioner_core::store::ScimTokenStore for $store {
                #[::tracing::instrument(skip_all, fields(db = $backend, name = name))]
                async fn create_scim_token(
                    &self,
                    name: &str,
                    token_sha256: &str,
                    audit: AuditEntry,
                ) -> Result<::admin_provisioner_core::store::ScimToken, StoreError> {
                    let mut tx = self.begin_write().await.map_err(map_err)?;
                    let inserted = ::sqlx::query(
                        "INSERT INTO scim_tokens (name, token_sha256, created_by, created_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(name)
                    .bind(token_sha256)
                    .bind(audit.actor.audit_name())
                    .bind(DbTime::new(audit.at))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                    if inserted == 0 {
                        return Err(StoreError::TokenNameTaken);
                    }
                    insert_audit(&mut tx, &audit).await?;
                    let token = scim_token_by_name(&mut tx, name)
                        .await?
                        .ok_or_else(|| StoreError::Other("inserted SCIM token vanished".into()))?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(token)
                }

                #[::tracing::instrument(skip_all, fields(db = $backend))]
                async fn list_scim_tokens(&self) -> Result<Vec<::admin_provisioner_core::store::ScimToken>, StoreError> {
                    Ok(::sqlx::query_as::<_, ScimTokenRow>(
                        "SELECT name, created_by, created_at, revoked_at, last_used_at FROM scim_tokens ORDER BY name",
                    )
                    .fetch_all(self.pool())
                    .await
                    .map_err(map_err)?
                    .into_iter()
                    .map(Into::into)
                    .collect())
                }

                #[::tracing::instrument(skip_all, fields(db = $backend, name = name))]
                async fn revoke_scim_token(
                    &self,
                    name: &str,
                    audit: AuditEntry,
                ) -> Result<::admin_provisioner_core::store::ScimToken, StoreError> {
                    let mut tx = self.begin_write().await.map_err(map_err)?;
                    let changed = ::sqlx::query(
                        "UPDATE scim_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE name = $1",
                    )
                    .bind(name)
                    .bind(DbTime::new(audit.at))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                    if changed == 0 {
                        return Err(StoreError::NotFound);
                    }
                    insert_audit(&mut tx, &audit).await?;
                    let token = scim_token_by_name(&mut tx, name).await?.ok_or(StoreError::NotFound)?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(token)
                }

                #[::tracing::instrument(skip_all, fields(db = $backend))]
                async fn authenticate_scim_token(
                    &self,
                    token_sha256: &str,
                    now: DateTime<Utc>,
                ) -> Result<Option<String>, StoreError> {
                    let name: Option<String> = ::sqlx::query_scalar(
                        "SELECT name FROM scim_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL",
                    )
                    .bind(token_sha256)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(map_err)?;
                    if let Some(name) = &name {
                        // Best effort: a busy database must not refuse a valid token over a timestamp.
                        let _ = ::sqlx::query("UPDATE scim_tokens SET last_used_at = $2 WHERE name = $1")
                            .bind(name)
                            .bind(DbTime::new(now))
                            .execute(self.pool())
                            .await;
                    }
                    Ok(name)
                }
            }

            #[::async_trait::async_trait]
            impl SagaLog for $store {
                #[::tracing::instrument(skip_all, fields(db = $backend, saga_id = %saga.id, kind = saga.kind.as_str()))]
                async fn begin(&self, saga: SagaRecord) -> Result<SagaRecord, StoreError> {
                    let inserted = ::sqlx::query_as::<_, SagaRow>(concat!(
                        "INSERT INTO sagas (",
                        $crate::sql::saga_columns!(),
                        ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21 \
                         WHERE $19 IS NULL OR NOT EXISTS \
                             (SELECT 1 FROM users u WHERE u.scim_user_name = $19 OR u.email_normalized = $19) \
                         ON CONFLICT (id) DO NOTHING RETURNING ",
                        $crate::sql::saga_columns!()
                    ))
                    .bind(DbId(saga.id))
                    .bind(saga.kind.as_str())
                    .bind(saga.actor.audit_name())
                    .bind(&saga.email)
                    .bind(&saga.email_normalized)
                    .bind(DbId::from(saga.user_id))
                    .bind(&saga.cognito_username)
                    .bind(&saga.cognito_sub)
                    .bind(saga.identity_created_by_saga)
                    .bind(saga.invite_delivered)
                    .bind(saga.state.as_str())
                    .bind(saga.attempts)
                    .bind(&saga.last_error)
                    .bind(&saga.request_id)
                    .bind(DbTime::new(saga.started_at))
                    .bind(DbTime::new(saga.updated_at))
                    .bind(&saga.owner)
                    .bind(saga.lease_expires_at.map(DbTime::new))
                    .bind(saga.scim.as_ref().map(|a| a.user_name.clone()))
                    .bind(saga.scim.as_ref().and_then(|a| a.external_id.clone()))
                    .bind(saga.scim.as_ref().map(|a| a.profile.clone()))
                    .fetch_optional(self.pool())
                    .await
                    .map_err(map_err)?;
                    match inserted {
                        Some(row) => SagaRecord::try_from(row),
                        // Same id again: the intent is already recorded. No row of that id: a SCIM intent
                        // whose userName an admin holds (checked in the same statement as the insert, so a
                        // provisioning that completed since the caller's check is seen).
                        None => match self.get(saga.id).await? {
                            Some(existing) => Ok(existing),
                            None if saga.scim.is_some() => Err(StoreError::UserNameTaken),
                            None => Err(StoreError::Other(format!("saga {} conflicts but cannot be read", saga.id))),
                        },
                    }
                }

                #[::tracing::instrument(skip_all, fields(db = $backend, saga_id = %id, state = ?update.state))]
                async fn update(&self, id: Uuid, update: SagaUpdate) -> Result<SagaRecord, StoreError> {
                    let (set_error, error) = match update.last_error {
                        Some(e) => (true, e),
                        None => (false, None),
                    };
                    let expected_owner = update.expected_owner.clone();
                    let row = ::sqlx::query_as::<_, SagaRow>(concat!(
                        "UPDATE sagas SET state = COALESCE($2, state), \
                         cognito_username = COALESCE($3, cognito_username), \
                         cognito_sub = COALESCE($4, cognito_sub), \
                         identity_created_by_saga = COALESCE($5, identity_created_by_saga), \
                         invite_delivered = COALESCE($6, invite_delivered), \
                         last_error = CASE WHEN $7 THEN $8 ELSE last_error END, \
                         attempts = attempts + $9, updated_at = $10, \
                         lease_expires_at = COALESCE($13, lease_expires_at) \
                         WHERE id = $1 AND state = COALESCE($11, state) \
                         AND ($12 IS NULL OR owner = $12) \
                         AND ($2 IS NULL OR state = $2 OR state NOT IN ('completed', 'compensated', 'aborted')) \
                         RETURNING ",
                        $crate::sql::saga_columns!()
                    ))
                    .bind(DbId(id))
                    .bind(update.state.map(|s| s.as_str()))
                    .bind(update.cognito_username)
                    .bind(update.cognito_sub)
                    .bind(update.identity_created_by_saga)
                    .bind(update.invite_delivered)
                    .bind(set_error)
                    .bind(error)
                    .bind(update.add_attempts)
                    .bind(update.at.map(DbTime::new).unwrap_or_else(|| self.now()))
                    .bind(update.expected_state.map(|s| s.as_str()))
                    .bind(expected_owner.clone())
                    .bind(update.lease_expires_at.map(DbTime::new))
                    .fetch_optional(self.pool())
                    .await
                    .map_err(map_err)?
                    .map(SagaRecord::try_from)
                    .transpose()?;
                    match row {
                        Some(record) => Ok(record),
                        // Nothing changed: no such saga, another owner holds it (lease lost), its state is
                        // not the one expected (compare-and-set lost), or it is already finished.
                        None => match self.get(id).await? {
                            Some(current) if expected_owner.is_some() && current.owner != expected_owner => {
                                Err(StoreError::LeaseLost(current.owner.unwrap_or_else(|| "nobody".into())))
                            }
                            Some(current) => Err(StoreError::SagaStateChanged(current.state.as_str().to_string())),
                            None => Err(StoreError::NotFound),
                        },
                    }
                }

                #[::tracing::instrument(skip_all, fields(db = $backend, owner = owner))]
                async fn claim_expired(
                    &self,
                    owner: &str,
                    now: DateTime<Utc>,
                    lease_until: DateTime<Utc>,
                    only: Option<Uuid>,
                    limit: i64,
                ) -> Result<Vec<SagaRecord>, StoreError> {
                    // The inner SELECT picks candidates (skipping rows another claimer has locked, on
                    // PostgreSQL); the outer WHERE repeats the test, so a row taken meanwhile is left alone.
                    let sql = format!(
                        concat!(
                            "UPDATE sagas SET owner = $1, lease_expires_at = $3, updated_at = $2 \
                             WHERE id IN (SELECT id FROM sagas \
                               WHERE state NOT IN ('completed', 'compensated', 'aborted') \
                               AND (lease_expires_at IS NULL OR lease_expires_at <= $2) \
                               AND ($4 IS NULL OR id = $4) \
                               ORDER BY started_at, id LIMIT $5{}) \
                             AND state NOT IN ('completed', 'compensated', 'aborted') \
                             AND (lease_expires_at IS NULL OR lease_expires_at <= $2) \
                             RETURNING ",
                            $crate::sql::saga_columns!()
                        ),
                        self.row_lock_clause()
                    );
                    let mut tx = self.begin_write().await.map_err(map_err)?;
                    let rows = ::sqlx::query_as::<_, SagaRow>(&sql)
                        .bind(owner)
                        .bind(DbTime::new(now))
                        .bind(DbTime::new(lease_until))
                        .bind(only.map(DbId))
                        .bind(limit)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    tx.commit().await.map_err(map_err)?;
                    let mut out = rows
                        .into_iter()
                        .map(SagaRecord::try_from)
                        .collect::<Result<Vec<_>, _>>()?;
                    out.sort_by_key(|s| (s.started_at, s.id));
                    Ok(out)
                }

                #[::tracing::instrument(skip_all, fields(db = $backend, saga_id = %id))]
                async fn get(&self, id: Uuid) -> Result<Option<SagaRecord>, StoreError> {
                    ::sqlx::query_as::<_, SagaRow>(concat!(
                        "SELECT ",
                        $crate::sql::saga_columns!(),
                        " FROM sagas WHERE id = $1"
                    ))
                    .bind(DbId(id))
                    .fetch_optional(self.pool())
                    .await
                    .map_err(map_err)?
                    .map(SagaRecord::try_from)
                    .transpose()
                }

                #[::tracing::instrument(skip_all, fields(db = $backend))]
                async fn list_unfinished(&self) -> Result<Vec<SagaRecord>, StoreError> {
                    ::sqlx::query_as::<_, SagaRow>(concat!(
                        "SELECT ",
                        $crate::sql::saga_columns!(),
                        " FROM sagas WHERE state NOT IN ('completed', 'compensated', 'aborted') \
                         ORDER BY started_at, id"
                    ))
                    .fetch_all(self.pool())
                    .await
                    .map_err(map_err)?
                    .into_iter()
                    .map(SagaRecord::try_from)
                    .collect()
                }

                #[::tracing::instrument(skip_all, fields(db = $backend, limit = limit))]
                async fn list_unfinished_provisions_page(
                    &self,
                    filter: &::admin_provisioner_core::pages::UnfinishedFilter,
                    after: Option<(DateTime<Utc>, Uuid)>,
                    limit: i64,
                ) -> Result<Vec<SagaRecord>, StoreError> {
                    let mut sql = String::from(concat!(
                        "SELECT ",
                        $crate::sql::saga_columns!(),
                        " FROM sagas s WHERE s.kind = 'provision' \
                         AND s.state NOT IN ('completed', 'compensated', 'aborted') \
                         AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id)"
                    ));
                    let mut n = 0;
                    match filter.stuck {
                        Some(true) => sql.push_str(" AND s.state = 'stuck'"),
                        Some(false) => sql.push_str(" AND s.state <> 'stuck'"),
                        None => {}
                    }
                    if filter.email_prefix.is_some() {
                        n += 1;
                        sql.push_str(&format!(" AND s.email_normalized LIKE ${n} ESCAPE '\\'"));
                    }
                    if after.is_some() {
                        sql.push_str(&format!(
                            " AND (s.started_at > ${} OR (s.started_at = ${} AND s.id > ${}))",
                            n + 1,
                            n + 2,
                            n + 3
                        ));
                        n += 3;
                    }
                    sql.push_str(&format!(" ORDER BY s.started_at, s.id LIMIT ${}", n + 1));
                    let mut q = ::sqlx::query_as::<_, SagaRow>(&sql);
                    if let Some(prefix) = &filter.email_prefix {
                        q = q.bind($crate::sql::like_prefix(prefix));
                    }
                    if let Some((t, id)) = after {
                        q = q.bind(DbTime::new(t)).bind(DbTime::new(t)).bind(DbId(id));
                    }
                    q.bind(limit.max(0))
                        .fetch_all(self.pool())
                        .await
                        .map_err(map_err)?
                        .into_iter()
                        .map(SagaRecord::try_from)
                        .collect()
                }

                #[::tracing::instrument(skip_all, fields(db = $backend))]
                async fn list_recent(&self, limit: i64) -> Result<Vec<SagaRecord>, StoreError> {
                    ::sqlx::query_as::<_, SagaRow>(concat!(
                        "SELECT ",
                        $crate::sql::saga_columns!(),
                        " FROM sagas ORDER BY started_at DESC, id DESC LIMIT $1"
                    ))
                    .bind(limit)
                    .fetch_all(self.pool())
                    .await
                    .map_err(map_err)?
                    .into_iter()
                    .map(SagaRecord::try_from)
                    .collect()
                }

                #[::tracing::instrument(skip_all)]
                async fn list_for_email(&self, email_normalized: &str) -> Result<Vec<SagaRecord>, StoreError> {
                    ::sqlx::query_as::<_, SagaRow>(concat!(
                        "SELECT ",
                        $crate::sql::saga_columns!(),
                        " FROM sagas WHERE email_normalized = $1 ORDER BY started_at, id"
                    ))
                    .bind(email_normalized)
                    .fetch_all(self.pool())
                    .await
                    .map_err(map_err)?
                    .into_iter()
                    .map(SagaRecord::try_from)
                    .collect()
                }
            }
        };
    };
}

/// How long an incomplete idempotency claim blocks retries before a retry of the same request may take it
/// over (longer than any request can run with its timeouts and retries).
pub(crate) const IDEMPOTENCY_CLAIM_TTL: chrono::Duration = chrono::Duration::minutes(10);

pub(crate) use impl_sql_store;
pub(crate) use saga_columns;
pub(crate) use select_admin;
