"""The floor's three writes for a group of jobs, as one statement each (psycopg parameters).

Used by the grouped floor (``bench/floor_grouped.py``) and by ``bench/grouped_sql.py``; no side
effects on import, so the latter needs neither a broker nor the floor's pool.
"""

# unnest() of one array per column: one statement text whatever the group's size, so nothing is
# built per group and PostgreSQL plans it like any other.
SUBMIT = """
WITH job_row AS (
  INSERT INTO jobs (id, owner, agent, input, request_hash, status, progress_percent, attempts, handed_back,
                    version, created_at, updated_at, enqueued_at, message_id)
  SELECT id, 'floor', agent, input, request_hash, 'queued', 0.0, 0, 0, 1, %(now)s, %(now)s, %(now)s, message_id
  FROM unnest(%(ids)s::text[], %(agents)s::text[], %(inputs)s::text[]::json[], %(hashes)s::text[],
              %(message_ids)s::text[]) AS u(id, agent, input, request_hash, message_id)
  RETURNING id)
INSERT INTO job_events (job_id, seq, at, status, percent, stage, message)
SELECT id, 1, %(now)s, 'queued', 0.0, NULL, 'Job accepted' FROM job_row
"""
CLAIM = """
WITH moved AS (
  UPDATE jobs SET status = 'running', attempts = attempts + 1, version = version + 1, started_at = %(now)s,
                  heartbeat_at = %(now)s, updated_at = %(now)s, progress_stage = 'starting'
  WHERE id = ANY(%(ids)s::text[]) AND status = 'queued'
  RETURNING id, version, status, attempts, input, progress_percent, progress_stage),
event AS (
  INSERT INTO job_events (job_id, seq, at, status, percent, stage, message)
  SELECT id, version, %(now)s, status, progress_percent, progress_stage, 'Attempt ' || attempts || ' started'
  FROM moved)
SELECT id, attempts, input FROM moved
"""
SUCCEED = """
WITH moved AS (
  UPDATE jobs SET status = 'succeeded', result = u.result, version = jobs.version + 1, finished_at = %(now)s,
                  updated_at = %(now)s, progress_percent = 100.0, progress_stage = 'done'
  FROM unnest(%(ids)s::text[], %(attempts)s::int[], %(results)s::text[]::json[]) AS u(id, attempt, result)
  WHERE jobs.id = u.id AND jobs.status = 'running' AND jobs.attempts = u.attempt
  RETURNING jobs.id, jobs.version, jobs.status, jobs.progress_percent, jobs.progress_stage),
event AS (
  INSERT INTO job_events (job_id, seq, at, status, percent, stage, message)
  SELECT id, version, %(now)s, status, progress_percent, progress_stage, 'Succeeded' FROM moved)
SELECT id FROM moved
"""
