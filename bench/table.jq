# The benchmark table from results.json (bench/report.sh runs it with jq -r).
def r(d): if . == null then null else (. * pow(10; d) | round) / pow(10; d) end;
def s: if . == null then "-" else tostring end;
def pad(w): s | if length >= w then . else . + (" " * (w - length)) end;
def lpad(w): s | if length >= w then . else (" " * (w - length)) + . end;
def div(d): if . == null then null else . / d end;
def mb: if . == null then null else . / 1000000 | r(2) end;
def row(name; ours; dflt; tuned; ratio):
  (name | pad(44)) + (ours | lpad(14)) + (dflt | lpad(14)) + (tuned | lpad(14)) + (ratio | lpad(10));
def ratio(a; b): if a == null or b == null or a == 0 then null else (b / a | if . < 1 then r(2) else r(1) end | tostring) + "x" end;
def wrow(name; w; peer):
  (name | pad(26)) + ((w.p50 | r(1)) | lpad(9)) + ((w.phases.unlock_ms | r(1)) | lpad(8))
  + ((w.phases.open_ms | r(1)) | lpad(7)) + ((w.phases.network_ms | r(1)) | lpad(9))
  + ((w.phases.apply_ms | r(1)) | lpad(8)) + ((w.phases.commit_ms | r(1)) | lpad(8))
  + ((w.phases.cpu_ms | r(1)) | lpad(8)) + ((peer | r(1)) | lpad(12)) + (ratio(w.p50; peer) | lpad(9));
def kb: if . == null then null else . / 1000 | r(1) end;
def lrow(link; name; c; pe):
  (link | pad(6)) + (name | pad(24)) + ((c.ms | div(1000) | r(2)) | lpad(8))
  + ("\(c.down | kb)/\(c.up | kb)" | lpad(15)) + ((c.requests // c.out.requests) | lpad(6))
  + ((if pe == null then null else pe.ms / 1000 | r(2) end) | lpad(10))
  + ((if pe == null then null else "\(pe.down | kb)/\(pe.up | kb)" end) | lpad(15))
  + ((if pe == null then null else (pe.requests // pe.out.requests) end) | lpad(6))
  + (ratio(c.ms; pe.ms) | lpad(9));

.machine as $m
| (.scales | (map(select(.plans_seeded >= 100000)) | first) // last) as $main
| (.scales | first) as $lo | (.scales | last) as $hi
| (
  "machine: \($m.cpu), \($m.cores) cores, \($m.mem_kib / 1048576 | r(1)) GiB; load average at the end \($m.loadavg_at_end)",
  (.scales[] as $x
   | $x.peer as $p
   | ($x.initial.plans // 0) as $plans
   | "",
     "== \($x.plans_seeded) plans seeded; \($plans) published plans reach a scope-\"all\" device (127.0.0.1; cmc over HTTPS, PouchDB over HTTP)",
     row("measure"; "cmc"; "PouchDB"; "PouchDB 1000"; "tuned/cmc"),
     row("initial sync, s"; ($x.initial.sync_ms | div(1000) | r(2)); ($p.pull_default.ms | div(1000) | r(2));
         ($p.pull_1000.ms | div(1000) | r(2)); ratio($x.initial.sync_ms; $p.pull_1000.ms)),
     row("  plans per second"; ($x.initial.plans_per_s | r(0)); ($p.pull_default.docs_per_s | r(0));
         ($p.pull_1000.docs_per_s | r(0)); null),
     row("  MB down"; ($x.initial.report.bytes_received | mb); ($p.pull_default.bytes_received | mb);
         ($p.pull_1000.bytes_received | mb); ratio($x.initial.report.bytes_received; $p.pull_1000.bytes_received)),
     row("  MB up"; ($x.initial.report.bytes_sent | mb); ($p.pull_default.bytes_sent | mb);
         ($p.pull_1000.bytes_sent | mb); null),
     row("  requests / connections"; "\($x.initial.report.requests) / \($x.initial.report.connections)";
         "- / \($p.pull_default.connections // "-")"; "- / \($p.pull_1000.connections // "-")"; null),
     row("  peak RSS of the process, MB"; ($x.initial_process.max_rss_kib | if . == null then null else . * 1024 end | mb);
         ($p.pull_default.process.max_rss_kib | if . == null then null else . * 1024 end | mb); ($p.pull_1000.process.max_rss_kib | if . == null then null else . * 1024 end | mb); null),
     row("  the same less Argon2id's 64 MiB, MB"; (($x.initial_process.max_rss_kib - 65536) * 1024 | mb); null; null; null),
     row("  replica on disk, MB"; ($x.replica.replica_bytes | mb); ($p.pull_default.local_bytes | mb);
         ($p.pull_1000.local_bytes | mb); null),
     row("100 changed plans, in-process p50 ms"; ($x.rounds.delta_ms.p50 | r(1)); null;
         ($p.rounds.delta_ms.p50 | r(1)); ratio($x.rounds.delta_ms.p50; $p.rounds.delta_ms.p50)),
     row("100 changed plans, in-process p99 ms"; ($x.rounds.delta_ms.p99 | r(1)); null;
         ($p.rounds.delta_ms.p99 | r(1)); ratio($x.rounds.delta_ms.p99; $p.rounds.delta_ms.p99)),
     row("  bytes down / up"; "\($x.rounds.last_delta.bytes_received)/\($x.rounds.last_delta.bytes_sent)"; null;
         "\($p.rounds.last_delta.bytes_received // "-")/\($p.rounds.last_delta.bytes_sent // "-")"; null),
     row("100 changed plans, whole process p50 ms"; ($x.process_rounds.p50 | r(1)); null; null; null),
     row("100 changed plans, whole process p99 ms"; ($x.process_rounds.p99 | r(1)); null; null; null),
     row("idle poll p50 ms"; ($x.rounds.idle_ms.p50 | r(2)); null; ($p.rounds.idle_ms.p50 | r(2));
         ratio($x.rounds.idle_ms.p50; $p.rounds.idle_ms.p50)),
     row("  bytes down / up"; "\($x.rounds.last_idle.bytes_received)/\($x.rounds.last_idle.bytes_sent)"; null;
         "\($p.rounds.last_idle.bytes_received // "-")/\($p.rounds.last_idle.bytes_sent // "-")"; null),
     row("lookup by NHS number, warm p50 us"; ($x.lookup.warm_lookup_us.p50 | r(1)); null;
         ($p.rounds.warm_get_us.p50 | r(1)); ratio($x.lookup.warm_lookup_us.p50; $p.rounds.warm_get_us.p50)),
     row("  warm p99 us"; ($x.lookup.warm_lookup_us.p99 | r(1)); null; ($p.rounds.warm_get_us.p99 | r(1));
         ratio($x.lookup.warm_lookup_us.p99; $p.rounds.warm_get_us.p99)),
     row("  warm p99.9 us"; ($x.lookup.warm_lookup_us.p999 | r(1)); null; ($p.rounds.warm_get_us.p999 | r(1)); null),
     row("  lookups measured"; $x.lookup.warm_lookup_us.n; null; $p.rounds.warm_get_us.n; null),
     row("  straight after opening p50 us"; ($x.lookup.first_lookup_us.p50 | r(1)); null;
         ($p.rounds.first_get_us.p50 | r(1)); null),
     row("  straight after opening p99 us"; ($x.lookup.first_lookup_us.p99 | r(1)); null;
         ($p.rounds.first_get_us.p99 | r(1)); null),
     row("open the replica (key known) p50 ms"; ($x.lookup.open_ms.p50 | r(2)); null; ($p.rounds.open_ms.p50 | r(2)); null),
     row("PIN unlock (Argon2id) + open, ms"; ($x.lookup.unlock_ms | r(1)); null; null; null),
     row("hub: idle polls per second, 64 devices"; ($x.load.polls_per_s | r(0)); null; null; null),
     row("  poll latency p50 / p99 ms"; "\($x.load.latency_us.p50 | div(1000) | r(1)) / \($x.load.latency_us.p99 | div(1000) | r(1))";
         null; null; null),
     row("  failed polls"; $x.load.failed; null; null; null),
     (if ($x.whole // {}) == {} then empty else
       "",
       "-- whole processes at \($x.plans_seeded) plans: cmc-agent over HTTPS, PIN unlock included (CMC_TRACE_PHASES=1);",
       "   PouchDB: a node process over HTTP. apply includes commit; network overlaps apply in a multi-page sync;",
       "   cpu: the agent process's own CPU time (user + system, every thread), less sensitive to a busy machine than wall time.",
       ("measure" | pad(26)) + ("p50 ms" | lpad(9)) + ("unlock" | lpad(8)) + ("open" | lpad(7)) + ("network" | lpad(9))
         + ("apply" | lpad(8)) + ("commit" | lpad(8)) + ("cpu" | lpad(8)) + ("PouchDB ms" | lpad(12)) + ("ratio" | lpad(9)),
       wrow("initial sync"; $x.whole.initial; (if $p == null then null else $p.pull_1000.process.wall_s * 1000 end)),
       wrow("100 changed plans"; $x.whole.sync100; $x.whole.peer_sync100.p50),
       wrow("sync, nothing new"; $x.whole.idle; $x.whole.peer_idle.p50),
       wrow("status"; $x.whole.status; null),
       wrow("lookup, plan held"; $x.whole.lookup; null),
       wrow("lookup, no plan"; $x.whole.lookup_miss; null)
     end),
     (if $x.fleet == null then empty else
       "",
       "-- \($x.fleet.devices) tablets enrolling at once at \($x.plans_seeded) plans (whole cmc-agent sync processes, HTTPS)",
       row("one tablet: initial sync, s"; ($x.fleet.one.wall_ms | div(1000) | r(2)); null; null; null),
       row("  hub CPU for it, s"; ($x.fleet.one.hub_cpu_s | r(2)); null; null; null),
       row("\($x.fleet.devices) at once: until the last is done, s"; ($x.fleet.wall_ms | div(1000) | r(2)); null; null;
           (if $x.fleet.one.wall_ms == null then null else ($x.fleet.wall_ms / $x.fleet.one.wall_ms | r(1) | tostring) + "x one" end)),
       row("  hub CPU per initial sync, s"; ($x.fleet.hub_cpu_s_per_sync | r(2)); null; null; null),
       row("  failed syncs"; $x.fleet.failed; null; null; null)
     end),
     (if $x.hub == null then empty else row("hub peak RSS over the run, MB"; ($x.hub.hub_peak_rss_kib | if . == null then null else . * 1024 end | mb); null; null; null) end),
     (if ($x.links // {}) == {} then empty else
       "",
       "-- shaped links at \($x.plans_seeded) plans (fault proxy; cmc HTTPS, PouchDB HTTP batch_size 1000; whole processes;",
       "   KB on the wire down/up, TLS included; 100-change: p50 of \([$x.links[] | .cmc.sync100.n] | first) rounds)",
       ("link" | pad(6)) + ("measure" | pad(24)) + ("cmc s" | lpad(8)) + ("KB down/up" | lpad(15)) + ("req" | lpad(6))
         + ("PouchDB s" | lpad(10)) + ("KB down/up" | lpad(15)) + ("req" | lpad(6)) + ("ratio" | lpad(9)),
       ($x.links | to_entries[] | .value as $l
        | lrow($l.name; "initial sync"; $l.cmc.initial; $l.peer.initial),
          lrow($l.name; "100 changed plans"; ($l.cmc.sync100 + {ms: $l.cmc.sync100.p50});
               (if $l.peer == null then null else ($l.peer.sync100 + {ms: $l.peer.sync100.p50}) end)),
          "      (\($l.kbit) kbit/s, \($l.rtt_ms) ms RTT, \($l.loss_permille / 10) % segments lost)")
     end)
  ),
  "",
  "== targets, at \($main.plans_seeded) plans (checked and reported, never asserted)",
  ( [ ["initial sync <= 3 s", ($main.initial.sync_ms | div(1000) | r(2)), ($main.initial.sync_ms <= 3000)],
      ["initial sync >= 6x faster than PouchDB batch_size 1000",
        (if $main.peer == null then null else ($main.peer.pull_1000.ms / $main.initial.sync_ms | r(1)) end),
        (if $main.peer == null then null else ($main.peer.pull_1000.ms / $main.initial.sync_ms >= 6) end)],
      ["initial sync <= 25 MB down", ($main.initial.report.bytes_received | mb), ($main.initial.report.bytes_received <= 25000000)],
      ["100-change delta p50 <= 20 ms", ($main.rounds.delta_ms.p50 | r(1)), ($main.rounds.delta_ms.p50 <= 20)],
      ["100-change delta p99 <= 50 ms", ($main.rounds.delta_ms.p99 | r(1)), ($main.rounds.delta_ms.p99 <= 50)],
      ["idle poll <= 5 ms", ($main.rounds.idle_ms.p50 | r(2)), ($main.rounds.idle_ms.p50 <= 5)],
      ["idle poll <= 1 KB (both ways)", ($main.rounds.last_idle.bytes_received + $main.rounds.last_idle.bytes_sent),
        (($main.rounds.last_idle.bytes_received + $main.rounds.last_idle.bytes_sent) <= 1024)],
      ["lookup p50 <= 30 us", ($main.lookup.warm_lookup_us.p50 | r(1)), ($main.lookup.warm_lookup_us.p50 <= 30)],
      ["lookup p99 <= 100 us", ($main.lookup.warm_lookup_us.p99 | r(1)), ($main.lookup.warm_lookup_us.p99 <= 100)],
      ["sync peak memory <= 32 MiB above Argon2id's 64 MiB", (($main.initial_process.max_rss_kib - 65536) / 1024 | r(1)),
        (($main.initial_process.max_rss_kib - 65536) <= 32768)],
      ["hub >= 5000 idle polls per second", ($main.load.polls_per_s | r(0)), ($main.load.polls_per_s >= 5000)],
      ["whole process: status <= 120 ms", ($main.whole.status.p50 | r(1)), ($main.whole.status.p50 <= 120)],
      ["  status less its PIN unlock (Argon2id), ms (information)",
        ($main.whole.status.p50 - $main.whole.status.phases.unlock_ms | r(1)), null],
      ["whole process: sync, nothing new <= 150 ms", ($main.whole.idle.p50 | r(1)), ($main.whole.idle.p50 <= 150)],
      ["whole process: 100-change sync <= 200 ms", ($main.whole.sync100.p50 | r(1)), ($main.whole.sync100.p50 <= 200)],
      ["whole process: 100-change sync >= 3x faster than PouchDB",
        (if $main.whole.peer_sync100 == null then null else ($main.whole.peer_sync100.p50 / $main.whole.sync100.p50 | r(1)) end),
        (if $main.whole.peer_sync100 == null then null else ($main.whole.peer_sync100.p50 / $main.whole.sync100.p50 >= 3) end)],
      ["whole process: initial sync <= 2.5 s", ($main.whole.initial.p50 | div(1000) | r(2)), ($main.whole.initial.p50 <= 2500)],
      ["whole process: initial sync >= 10x faster than PouchDB 1000",
        (if $main.peer == null then null else ($main.peer.pull_1000.process.wall_s * 1000 / $main.whole.initial.p50 | r(1)) end),
        (if $main.peer == null then null else ($main.peer.pull_1000.process.wall_s * 1000 / $main.whole.initial.p50 >= 10) end)],
      ["in-process 100-change delta p50 <= 15 ms", ($main.rounds.delta_ms.p50 | r(1)), ($main.rounds.delta_ms.p50 <= 15)],
      ["in-process 100-change delta p99 <= 30 ms", ($main.rounds.delta_ms.p99 | r(1)), ($main.rounds.delta_ms.p99 <= 30)],
      ["snapshot <= 12 MB down", ($main.initial.report.bytes_received | mb), ($main.initial.report.bytes_received <= 12000000)],
      ["100-change delta <= 25 KB down", ($main.rounds.last_delta.bytes_received | div(1000) | r(1)),
        ($main.rounds.last_delta.bytes_received <= 25000)],
      ["16 enrolling at once <= 3x the wall time of one",
        (if $main.fleet == null then null else ($main.fleet.wall_ms / $main.fleet.one.wall_ms | r(1)) end),
        (if $main.fleet == null then null else ($main.fleet.wall_ms / $main.fleet.one.wall_ms <= 3) end)],
      ["hub CPU per additional initial sync falls >= 5x (16 at once vs one)",
        (if $main.fleet == null then null else ($main.fleet.one.hub_cpu_s / $main.fleet.hub_cpu_s_per_sync | r(1)) end),
        (if $main.fleet == null then null else ($main.fleet.one.hub_cpu_s / $main.fleet.hub_cpu_s_per_sync >= 5) end)],
      # "flat": the largest scale's figure at most twice the smallest's (n/a with one scale)
      ["lookup p99 flat from \($lo.plans_seeded) to \($hi.plans_seeded) plans (at most 2x)",
        (if $lo == $hi then null else ($hi.lookup.warm_lookup_us.p99 / $lo.lookup.warm_lookup_us.p99 | r(1)) end),
        (if $lo == $hi then null else ($hi.lookup.warm_lookup_us.p99 <= 2 * $lo.lookup.warm_lookup_us.p99) end)],
      ["idle poll flat from \($lo.plans_seeded) to \($hi.plans_seeded) plans (at most 2x)",
        (if $lo == $hi then null else ($hi.rounds.idle_ms.p50 / $lo.rounds.idle_ms.p50 | r(1)) end),
        (if $lo == $hi then null else ($hi.rounds.idle_ms.p50 <= 2 * $lo.rounds.idle_ms.p50) end)]
    ][]
    | (if .[2] == null and (.[0] | test("information")) then "info" elif .[2] == null then "n/a " elif .[2] then "MET " else "MISS" end) + "  " + (.[0] | pad(62)) + (.[1] | s) )
)
