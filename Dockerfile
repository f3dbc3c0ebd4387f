# otsensor as an appliance image: analyse mounted captures, or (later) sniff a mirror port.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends tcpdump \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/otsensor
COPY pyproject.toml README.md ./
COPY sensor ./sensor
COPY dissectors ./dissectors
COPY baselines ./baselines
RUN pip install --no-cache-dir .

# Captures in, results out: docker run -v $PWD:/data otsensor analyze /data/x.pcap -o /data/out
VOLUME ["/data"]
ENTRYPOINT ["otsensor"]
CMD ["--help"]
