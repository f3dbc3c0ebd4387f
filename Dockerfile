# otsensor as an appliance image: `otsensor run` on the host's mirror port, outputs in a volume.
#
#   docker build -t otsensor .
#   docker run -d --name otsensor --network host --cap-add NET_RAW --cap-add NET_ADMIN \
#       -v /etc/otsensor:/etc/otsensor:ro -v otsensor-data:/var/lib/otsensor otsensor
#
# (README, "Install as an appliance".)  Captures can still be analysed: ... otsensor analyze /data/x.pcap -o /data/out

# -- build: compile the wheel (setup.py compiles the hot path with mypyc, which needs gcc and the headers)
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY sensor ./sensor
COPY dissectors ./dissectors
COPY baselines ./baselines
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[metrics]'

# -- runtime: the wheel and its dependencies only; no compiler, no sources
FROM python:3.11-slim-bookworm
# libpcap compiles --bpf filters; libcap2-bin gives the interpreter below its two capabilities
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpcap0.8 libcap2-bin \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
# A dedicated interpreter for otsensor carries CAP_NET_RAW and CAP_NET_ADMIN as file capabilities, so the
# sensor runs as the non-root user below (docker gives a non-root process no capability otherwise, even
# with --cap-add); it opens its capture sockets, then drops both.  No other program in the image has them.
RUN cp /usr/local/bin/python3.11 /usr/local/bin/otsensor-python \
 && /usr/local/bin/otsensor-python -m pip install --no-cache-dir --no-index /wheels/*.whl \
 && rm -rf /wheels \
 && setcap cap_net_raw,cap_net_admin+ep /usr/local/bin/otsensor-python \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/otsensor --shell /usr/sbin/nologin otsensor \
 && mkdir -p /etc/otsensor /var/lib/otsensor/out \
 && chown -R otsensor:otsensor /var/lib/otsensor

USER otsensor
ENV OTSENSOR_OUTPUT=/var/lib/otsensor/out
VOLUME ["/etc/otsensor", "/var/lib/otsensor"]
# unhealthy when stats.json is older than three of its rewrite periods, or says the sensor stopped
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["otsensor", "health"]
ENTRYPOINT ["otsensor"]
CMD ["run", "--config", "/etc/otsensor/sensor.toml", "-o", "/var/lib/otsensor/out"]
