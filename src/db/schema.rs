// @generated automatically by Diesel CLI.

diesel::table! {
    admin_sessions (token_hash) {
        token_hash -> Bytea,
        user_id -> Uuid,
        created_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        expires_at -> Timestamptz,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        aal -> Int2,
        authenticated_at -> Timestamptz,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        user_id -> Uuid,
        name -> Text,
        prefix -> Text,
        key_hash -> Bytea,
        scopes -> Array<Text>,
        created_at -> Timestamptz,
        expires_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        revoked_by -> Nullable<Uuid>,
        revoke_reason -> Nullable<Text>,
        rotated_to -> Nullable<Uuid>,
        grace_until -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    attachment_chunks (attachment_id, seq) {
        attachment_id -> Uuid,
        seq -> Int4,
        ciphertext -> Text,
    }
}

diesel::table! {
    attachments (id) {
        id -> Uuid,
        message_id -> Uuid,
        conversation_id -> Uuid,
        data_key_id -> Uuid,
        name_ciphertext -> Text,
        content_type -> Text,
        size -> Int8,
        chunks -> Int4,
        position -> Int2,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    audit_aggregates (action, ip, scope, window_start) {
        action -> Text,
        ip -> Inet,
        window_start -> Timestamptz,
        event_count -> Int8,
        last_seen_at -> Timestamptz,
        log_id -> Nullable<Int8>,
        scope -> Text,
    }
}

diesel::table! {
    audit_salts (user_id) {
        user_id -> Uuid,
        salt -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    audit_checkpoints (id) {
        id -> Int8,
        created_at -> Timestamptz,
        pruned_before -> Timestamptz,
        last_pruned_id -> Int8,
        last_pruned_hash -> Bytea,
        pruned_count -> Int8,
        prev_mac -> Bytea,
        mac -> Bytea,
    }
}

diesel::table! {
    audit_logs (id) {
        id -> Int8,
        occurred_at -> Timestamptz,
        actor_type -> Text,
        actor_id -> Nullable<Text>,
        action -> Text,
        outcome -> Text,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        ip -> Nullable<Inet>,
        user_agent -> Nullable<Text>,
        request_id -> Nullable<Text>,
        metadata -> Jsonb,
        prev_hash -> Bytea,
        hash -> Bytea,
        server_request_id -> Nullable<Text>,
    }
}

diesel::table! {
    conversation_members (conversation_id, user_id) {
        conversation_id -> Uuid,
        user_id -> Uuid,
        joined_at -> Timestamptz,
        last_read_seq -> Int8,
    }
}

diesel::table! {
    conversations (id) {
        id -> Uuid,
        kind -> Text,
        creator_id -> Uuid,
        data_key_id -> Uuid,
        title_ciphertext -> Nullable<Text>,
        created_at -> Timestamptz,
        last_activity_at -> Timestamptz,
        last_seq -> Int8,
    }
}

diesel::table! {
    data_keys (id) {
        id -> Uuid,
        user_id -> Uuid,
        master_key_id -> Text,
        wrapped -> Nullable<Text>,
        created_at -> Timestamptz,
        rewrapped_at -> Nullable<Timestamptz>,
        destroyed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    email_outbox (id) {
        id -> Uuid,
        kind -> Text,
        recipient -> Text,
        user_id -> Nullable<Uuid>,
        subject -> Text,
        text_body -> Text,
        html_body -> Text,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    email_tokens (token_hash) {
        token_hash -> Bytea,
        user_id -> Uuid,
        purpose -> Text,
        email -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    known_devices (user_id, agent, network) {
        user_id -> Uuid,
        agent -> Text,
        network -> Text,
        first_seen_at -> Timestamptz,
        last_seen_at -> Timestamptz,
    }
}

diesel::table! {
    mfa_challenges (token_hash) {
        token_hash -> Bytea,
        user_id -> Uuid,
        purpose -> Text,
        ip -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    mfa_recovery_codes (id) {
        id -> Uuid,
        user_id -> Uuid,
        lookup -> Text,
        code_hash -> Text,
        created_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    mfa_totp (user_id) {
        user_id -> Uuid,
        data_key_id -> Uuid,
        secret -> Text,
        created_at -> Timestamptz,
        confirmed_at -> Nullable<Timestamptz>,
        last_step -> Int8,
    }
}

diesel::table! {
    messages (id) {
        id -> Uuid,
        conversation_id -> Uuid,
        seq -> Int8,
        author_id -> Uuid,
        data_key_id -> Uuid,
        body_ciphertext -> Nullable<Text>,
        created_at -> Timestamptz,
        edited_at -> Nullable<Timestamptz>,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    quota_usage (subject_type, subject_id, kind, day) {
        subject_type -> Text,
        subject_id -> Uuid,
        kind -> Text,
        day -> Date,
        used -> Int4,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Bytea,
        session_id -> Uuid,
        created_at -> Timestamptz,
        spent_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        created_at -> Timestamptz,
        last_used_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        revoked_reason -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        aal -> Int2,
        amr -> Array<Text>,
        authenticated_at -> Timestamptz,
    }
}

diesel::table! {
    subscriptions (user_id) {
        user_id -> Uuid,
        customer_id -> Nullable<Text>,
        subscription_id -> Nullable<Text>,
        price_id -> Nullable<Text>,
        status -> Text,
        current_period_end -> Nullable<Timestamptz>,
        cancel_at_period_end -> Bool,
        last_payment_failed_at -> Nullable<Timestamptz>,
        event_created_at -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    user_blocks (blocker_id, blocked_id) {
        blocker_id -> Uuid,
        blocked_id -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    user_identities (id) {
        id -> Uuid,
        provider -> Text,
        issuer -> Text,
        subject -> Text,
        user_id -> Uuid,
        email -> Nullable<Text>,
        created_at -> Timestamptz,
        last_seen_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        username -> Text,
        email -> Text,
        password_hash -> Nullable<Text>,
        role -> Text,
        active -> Bool,
        display_name -> Nullable<Text>,
        failed_logins -> Int4,
        locked_until -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        admin_granted_by -> Nullable<Text>,
        erased_at -> Nullable<Timestamptz>,
        email_verified_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    webhook_events (id) {
        id -> Uuid,
        provider -> Text,
        event_id -> Text,
        event_type -> Text,
        received_at -> Timestamptz,
        signature -> Text,
        signed_at -> Timestamptz,
        outcome -> Text,
        error -> Nullable<Text>,
        deliveries -> Int4,
        last_delivery_at -> Timestamptz,
        processed_at -> Nullable<Timestamptz>,
        replays -> Int4,
        raw_body -> Bytea,
        headers -> Jsonb,
        request_id -> Nullable<Text>,
        source_ip -> Nullable<Inet>,
    }
}

diesel::table! {
    ws_connections (id) {
        id -> Uuid,
        user_id -> Uuid,
        ip -> Text,
        instance_id -> Uuid,
        opened_at -> Timestamptz,
        seen_at -> Timestamptz,
    }
}

diesel::table! {
    ws_tickets (token_hash) {
        token_hash -> Bytea,
        user_id -> Uuid,
        session_id -> Nullable<Uuid>,
        api_key_id -> Nullable<Uuid>,
        identity_id -> Nullable<Uuid>,
        ip -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(admin_sessions -> users (user_id));
diesel::joinable!(api_keys -> users (user_id));
diesel::joinable!(attachment_chunks -> attachments (attachment_id));
diesel::joinable!(attachments -> conversations (conversation_id));
diesel::joinable!(attachments -> data_keys (data_key_id));
diesel::joinable!(attachments -> messages (message_id));
diesel::joinable!(audit_salts -> users (user_id));
diesel::joinable!(audit_aggregates -> audit_logs (log_id));
diesel::joinable!(conversation_members -> conversations (conversation_id));
diesel::joinable!(conversation_members -> users (user_id));
diesel::joinable!(conversations -> data_keys (data_key_id));
diesel::joinable!(conversations -> users (creator_id));
diesel::joinable!(data_keys -> users (user_id));
diesel::joinable!(mfa_challenges -> users (user_id));
diesel::joinable!(mfa_recovery_codes -> users (user_id));
diesel::joinable!(mfa_totp -> users (user_id));
diesel::joinable!(email_outbox -> users (user_id));
diesel::joinable!(email_tokens -> users (user_id));
diesel::joinable!(known_devices -> users (user_id));
diesel::joinable!(messages -> conversations (conversation_id));
diesel::joinable!(messages -> data_keys (data_key_id));
diesel::joinable!(messages -> users (author_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(subscriptions -> users (user_id));
diesel::joinable!(user_identities -> users (user_id));
diesel::joinable!(ws_connections -> users (user_id));
diesel::joinable!(ws_tickets -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    admin_sessions,
    api_keys,
    attachment_chunks,
    attachments,
    audit_aggregates,
    audit_checkpoints,
    audit_logs,
    audit_salts,
    conversation_members,
    conversations,
    data_keys,
    email_outbox,
    email_tokens,
    known_devices,
    messages,
    mfa_challenges,
    mfa_recovery_codes,
    mfa_totp,
    quota_usage,
    refresh_tokens,
    sessions,
    subscriptions,
    user_blocks,
    user_identities,
    users,
    webhook_events,
    ws_connections,
    ws_tickets,
);
