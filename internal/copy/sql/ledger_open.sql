INSERT INTO pgmove.copy (migration, slot, src_sysid, src_dboid, dst_sysid, dst_dboid)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING copy_id
