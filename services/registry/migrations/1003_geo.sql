-- Grid geometry for location lookup (issue #3), in WGS84 degrees; GCJ-02 input is converted before it is
-- stored. No PostGIS: lookups run on an in-memory index the service builds from these columns, so plain
-- types suffice. boundary is a JSON list of closed rings, the first the outer boundary and the rest holes,
-- each ring a list of [lon, lat] pairs.
ALTER TABLE grids
    ADD COLUMN boundary            JSONB CHECK (boundary IS NULL OR jsonb_typeof(boundary) = 'array'),
    ADD COLUMN centre_lon          DOUBLE PRECISION CHECK (centre_lon BETWEEN -180 AND 180),
    ADD COLUMN centre_lat          DOUBLE PRECISION CHECK (centre_lat BETWEEN -90 AND 90),
    ADD COLUMN geometry_updated_at TIMESTAMPTZ,
    ADD CONSTRAINT grid_centre_whole CHECK ((centre_lon IS NULL) = (centre_lat IS NULL));

-- The index is rebuilt from every bounded grid; the partial index keeps that scan off unbounded grids.
CREATE INDEX grids_with_boundary ON grids (code) WHERE boundary IS NOT NULL AND retired_at IS NULL;
