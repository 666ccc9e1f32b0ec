-- The media service's known identities: one row per identity file (<id>.json) of the identities directory.
CREATE TABLE media_identities (
    identity_id text PRIMARY KEY,
    display_name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
