-- Encrypted conversations (issue 15): per-user data keys, conversations, members, messages,
-- attachments (encrypted in chunks), blocks.
--
-- Nothing here holds plaintext content: bodies, titles, attachment names and attachment bytes are
-- Fernet tokens under the author's (or creator's) data key, and each row records that key's id.

-- A user's data key, stored only wrapped by a master key (ENCRYPTION_KEY / ..._PREVIOUS), named
-- by the master key's fingerprint. `wrapped` NULL: destroyed (crypto-shredding, issue 16).
CREATE TABLE data_keys (
    id            UUID PRIMARY KEY,
    user_id       UUID NOT NULL UNIQUE REFERENCES users (id),
    master_key_id TEXT NOT NULL CHECK (master_key_id ~ '^mk_[0-9a-f]{16}$'),
    wrapped       TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    rewrapped_at  TIMESTAMPTZ,
    destroyed_at  TIMESTAMPTZ,
    CONSTRAINT data_keys_destroyed_has_no_wrap CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL))
);
-- Rotation walks the keys still under an old master key, in id order (resumable batches).
CREATE INDEX data_keys_master_idx ON data_keys (master_key_id, id) WHERE wrapped IS NOT NULL;

CREATE TABLE conversations (
    id                UUID PRIMARY KEY,
    kind              TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    creator_id        UUID NOT NULL REFERENCES users (id),
    data_key_id       UUID NOT NULL REFERENCES data_keys (id),
    title_ciphertext  TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    last_activity_at  TIMESTAMPTZ NOT NULL,
    -- The sequence number of the newest message: taken under this row's lock, so numbers are
    -- handed out in commit order and a reader paging with ?after= never skips a late commit.
    last_seq          BIGINT NOT NULL DEFAULT 0 CHECK (last_seq >= 0)
);

CREATE TABLE conversation_members (
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         UUID NOT NULL REFERENCES users (id),
    joined_at       TIMESTAMPTZ NOT NULL,
    last_read_seq   BIGINT NOT NULL DEFAULT 0 CHECK (last_read_seq >= 0),
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_members_user_idx ON conversation_members (user_id, conversation_id);

CREATE TABLE messages (
    id               UUID PRIMARY KEY,
    conversation_id  UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq              BIGINT NOT NULL CHECK (seq > 0),
    author_id        UUID NOT NULL REFERENCES users (id),
    data_key_id      UUID NOT NULL REFERENCES data_keys (id),
    -- NULL once deleted: a deleted message keeps its place and loses its content.
    body_ciphertext  TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    edited_at        TIMESTAMPTZ,
    deleted_at       TIMESTAMPTZ,
    UNIQUE (conversation_id, seq),
    CONSTRAINT messages_deleted_has_no_body CHECK (deleted_at IS NULL OR body_ciphertext IS NULL)
);
CREATE INDEX messages_created_idx ON messages (created_at);
CREATE INDEX messages_author_idx ON messages (author_id);

CREATE TABLE attachments (
    id               UUID PRIMARY KEY,
    message_id       UUID NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    conversation_id  UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    data_key_id      UUID NOT NULL REFERENCES data_keys (id),
    name_ciphertext  TEXT NOT NULL,
    content_type     TEXT NOT NULL CHECK (content_type IN ('png', 'jpeg', 'webp', 'gif', 'pdf', 'text')),
    size             BIGINT NOT NULL CHECK (size >= 0),
    chunks           INTEGER NOT NULL CHECK (chunks >= 0),
    position         SMALLINT NOT NULL CHECK (position >= 0),
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX attachments_message_idx ON attachments (message_id, position);

-- Attachment bytes, one Fernet token per chunk (at most 256 KiB of plaintext each): an upload or a
-- download never holds more than one chunk's ciphertext beside the plaintext.
CREATE TABLE attachment_chunks (
    attachment_id UUID NOT NULL REFERENCES attachments (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL CHECK (seq >= 0),
    ciphertext    TEXT NOT NULL,
    PRIMARY KEY (attachment_id, seq)
);

CREATE TABLE user_blocks (
    blocker_id UUID NOT NULL REFERENCES users (id),
    blocked_id UUID NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id),
    CHECK (blocker_id <> blocked_id)
);
CREATE INDEX user_blocks_blocked_idx ON user_blocks (blocked_id);
