-- Lookups by name when a face match is labelled.
CREATE INDEX media_identities_display_name ON media_identities (display_name);
