# The stand-in for the mAI application (tests/e2e/standin/main.rs): its
# static binary and nothing else, so that it builds without pulling an
# image. The build context is a folder holding only `mai-standin`. It runs as
# root, as the Open WebUI image does by default.
FROM scratch
COPY mai-standin /mai-standin
ENTRYPOINT ["/mai-standin"]
