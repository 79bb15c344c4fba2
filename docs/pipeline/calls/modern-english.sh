#!/usr/bin/env bash
# Device call: phase 4 with modern English. The shipped phase-4 model
# continued (the phase4 preset, padded) on the books, both Alpaca files and
# the seed tasks as before, plus the T0 sample of Self-Instruct's repository
# (scripts/t0-from-self-instruct): its passages as text and its records as
# instruction examples. Then exported at int8 and scored as every phase-4
# run: held-out tasks by blocks with the end known (seeds 0-2), the trained
# split, the open 128 hole, and free samples to read.
#
# .dev/c7 (carried) holds samnet.xz (strip + xz of target/release/samnet),
# text.tar.xz (gutenberg/ and alpaca_sample.json of ../shared/data),
# alpaca_seed_tasks.jsonl, alpaca_5000.json.gz (scripts/alpaca-without-held-out)
# and t0-examples.json.gz, t0-text.txt.gz (scripts/t0-from-self-instruct).
# T0_EXAMPLES names another examples file there, e.g. t0-long-examples.json.gz
# (the same script with --min-answer-words 8).
# CONFIG names a config file to train with instead of the phase4 preset, e.g.
# docs/pipeline/config-phase4-unpadded.json (the shipped model's own recipe).
# RESUME=1 continues the run a previous call left in /tmp/m (a machine kept
# warm between calls keeps /tmp) to STEPS in all, instead of starting one.
set -u
t0=$(date +%s)
left() { echo $(( ${DEADLINE:-560} - ($(date +%s) - t0) )); }
source scripts/gpu-env
rm -rf /tmp/r /tmp/d /tmp/export # a warm machine keeps /tmp
if [ -n "${RESUME:-}" ]; then
  [ -d /tmp/m/checkpoint ] || { echo "RESUME: no run in /tmp/m (the machine was not kept warm)"; exit 1; }
  start=(--resume) # the run's config is its checkpoint's
else
  rm -rf /tmp/m
  recipe=(--preset phase4)
  [ -z "${CONFIG:-}" ] || recipe=(--config "$CONFIG")
  start=("${recipe[@]}" --init-from assets/phase4 --tokenizer assets/phase4/tokenizer.json --lr ${LR:-3e-4} --precision auto)
fi
xz -dc .dev/c7/samnet.xz > /tmp/samnet && chmod +x /tmp/samnet
S=/tmp/samnet; R=/tmp/r; D=/tmp/d; mkdir -p $R $D
tar -C $D -xJf .dev/c7/text.tar.xz
cp .dev/c7/*.jsonl .dev/c7/*.json.gz .dev/c7/*.txt.gz $D/
pack() { tar -C $R -czf $OUT/r.tgz . ; }
$S doctor > $R/doctor.txt 2>&1; head -1 $R/doctor.txt
grep -q NVIDIA $R/doctor.txt || { cp $R/doctor.txt $OUT/; exit 1; }
T=$D/alpaca_seed_tasks.jsonl

timeout $(( $(left) - 110 )) $S train "${start[@]}" --steps ${STEPS:-14000} \
  --data $D/gutenberg $D/alpaca_sample.json $D/alpaca_5000.json.gz $T $D/t0-text.txt.gz $D/${T0_EXAMPLES:-t0-examples.json.gz} \
  --out /tmp/m --no-progress > $R/train.log 2>&1
echo "training rc $? at $(( $(date +%s) - t0 )) s" | tee $R/train-done.txt
tail -3 $R/train.log
cp /tmp/m/metrics.jsonl $R/metrics.jsonl 2>/dev/null
pack
$S export --ckpt /tmp/m/checkpoint --out /tmp/export --int8 > $R/export.log 2>&1 || { cat $R/export.log; exit 1; }
for seed in 0 1 2; do
  timeout $(left) $S eval-instruct --ckpt /tmp/export --tasks $T --order blocks --ends --hole 64 --seed $seed > $R/modern-e64-s$seed.json 2> $R/modern-e64-s$seed.err
done
timeout $(left) $S eval-instruct --ckpt /tmp/export --tasks $T --split trained --order blocks --ends --hole 64 --seed 0 > $R/modern-trained-e64-s0.json 2> $R/modern-trained-e64-s0.err
timeout $(left) $S eval-instruct --ckpt /tmp/export --tasks $T --order blocks --hole 128 --seed 0 > $R/modern-h128-s0.json 2> $R/modern-h128-s0.err
for seed in 1 2 3; do
  timeout 30 $S sample --ckpt /tmp/export --steps 64 --len 128 --seed $seed > $R/sample-s$seed.txt 2>&1
done
cp /tmp/export/config.json $R/export-config.json
tar -C /tmp/export -cf $OUT/export.tar . # the int8 model, to ship if it wins
python3 docs/pipeline/calls/instruct-summary $R/modern-*.json
head -c 600 $R/sample-s1.txt
pack
echo "done at $(( $(date +%s) - t0 )) s"
