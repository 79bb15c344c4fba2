#!/usr/bin/env bash
# The device call of docs/pipeline.md's "The curriculum padded" (and the
# check of "Draws that do not depend on the batch"), as run from the
# repository root on the GPU machine with `.gl` and `.dev/c7` carried:
#   .dev/c7/samnet.xz        the stripped release binary (xz)
#   .dev/c7/text.tar.xz      ../shared/data/gutenberg and alpaca_sample.json
#   .dev/c7/alpaca_seed_tasks.jsonl, copy-probe.jsonl, copy-tasks.json.gz,
#   alpaca_5000.json.gz      (scripts/instructions-that-copy and
#                            scripts/alpaca-without-held-out write the last three)
# Results come back as $OUT/r.tgz.
set -u
rm -rf /tmp/copy /tmp/mix /tmp/export /tmp/r /tmp/d  # a warm machine keeps the last call's
t0=$(date +%s)
left() { echo $(( ${DEADLINE:-560} - ($(date +%s) - t0) )); }
source scripts/gpu-env
xz -dc .dev/c7/samnet.xz > /tmp/samnet && chmod +x /tmp/samnet
S=/tmp/samnet; R=/tmp/r; D=/tmp/d; mkdir -p $R $D
tar -C $D -xJf .dev/c7/text.tar.xz
cp .dev/c7/*.jsonl .dev/c7/*.json.gz $D/
pack() { tar -C $R -czf $OUT/r.tgz . ; }
$S doctor > $R/doctor.txt 2>&1; head -1 $R/doctor.txt
grep -q NVIDIA $R/doctor.txt || { cp $R/doctor.txt $OUT/; exit 1; }
T=$D/alpaca_seed_tasks.jsonl
(
  timeout $(( $(left) - 150 )) $S train --preset phase4 --init-from assets/phase4 --tokenizer assets/phase4/tokenizer.json \
    --steps ${COPY_STEPS:-8000} --precision auto --eval-every 0 --data $D/copy-tasks.json.gz --out /tmp/copy > $R/train-copy.log 2>&1 &&
  timeout $(( $(left) - 60 )) $S train --preset phase4 --init-from /tmp/copy/checkpoint \
    --steps ${MIX_STEPS:-6000} --precision auto --data $D/gutenberg $D/alpaca_sample.json $D/alpaca_5000.json.gz $T $D/copy-tasks.json.gz \
    --out /tmp/mix > $R/train-mix.log 2>&1
  echo "training rc $? at $(( $(date +%s) - t0 )) s" > $R/train-done.txt
) &
train_pid=$!
for batch in all 96; do
  extra=(); [ $batch != all ] && extra=(--batch $batch)
  timeout 120 $S eval-instruct --ckpt assets/phase4 --tasks $T --order blocks --ends --hole 64 --samples 16 --seed 0 "${extra[@]}" > $R/fixcheck-$batch.json 2> $R/fixcheck-$batch.err
done
python3 - <<'PY'
import json
a, b = (json.load(open(f'/tmp/r/fixcheck-{x}.json')) for x in ('all', '96'))
same = [x['response'] for x in a['results']] == [x['response'] for x in b['results']]
print('fixcheck', {k: a.get(k) for k in ('rouge_l', 'one_draw_rouge_l', 'best_candidate_rouge_l', 'sampling_s')}, 'batch 96:', b.get('rouge_l'), b.get('sampling_s'), 'same responses:', same)
PY
pack
wait $train_pid
cat $R/train-done.txt; tail -2 $R/train-copy.log; tail -2 $R/train-mix.log
cp /tmp/copy/metrics.jsonl $R/metrics-copy.jsonl 2>/dev/null; cp /tmp/mix/metrics.jsonl $R/metrics-mix.jsonl 2>/dev/null
pack
if [ -f /tmp/mix/checkpoint/model.safetensors ] || [ -d /tmp/mix/checkpoint ]; then
  $S export --ckpt /tmp/mix/checkpoint --out /tmp/export --int8 > $R/export.log 2>&1
  for seed in 0 1 2; do
    timeout $(left) $S eval-instruct --ckpt /tmp/export --tasks $T --order blocks --ends --hole 64 --seed $seed > $R/padcur-e64-s$seed.json 2> $R/padcur-e64-s$seed.err
  done
  timeout $(left) $S eval-instruct --ckpt /tmp/export --tasks $T --order blocks --hole 128 --seed 0 > $R/padcur-h128-s0.json 2> $R/padcur-h128-s0.err
  timeout $(left) $S eval-instruct --ckpt /tmp/export --tasks $D/copy-probe.jsonl --order blocks --ends --hole 64 --seed 0 > $R/padcur-probe-e64-s0.json 2> $R/padcur-probe-e64-s0.err
  timeout $(left) $S eval-instruct --ckpt /tmp/export --tasks $T --split trained --order blocks --ends --hole 64 --seed 0 > $R/padcur-trained-e64-s0.json 2> $R/padcur-trained-e64-s0.err
  cp /tmp/export/config.json $R/export-config.json
  python3 docs/pipeline/calls/instruct-summary $R/padcur-*.json
fi
pack
echo "done at $(( $(date +%s) - t0 )) s"
