# One image for every component: kubetrade operator|runner|api|notify|validate|preflight.
# Build stage has the compilers; the final stage has only the virtualenv and the code.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/kubetrade
COPY pyproject.toml README.md ./
COPY kubetrade ./kubetrade
# Bytecode is compiled here, once: the pods run on a read-only root filesystem (and with
# PYTHONDONTWRITEBYTECODE), so Python can never cache what it compiles, and without .pyc
# files every pod start (operator, runner, pre-flight/validation Job) compiled kubetrade,
# ccxt, kubernetes, ... from source again (seen on the test bed's node). unchecked-hash:
# the .pyc files do not depend on file times (COPY, reproducible builds).
RUN /opt/kubetrade/bin/pip install --no-compile . \
    && find /opt/kubetrade -name '__pycache__' -prune -exec rm -rf {} + \
    && /opt/kubetrade/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
       /opt/kubetrade/lib

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="kubetrade" \
      org.opencontainers.image.description="Kubernetes-native crypto trading bot" \
      org.opencontainers.image.source="https://github.com/kubetrade/kubetrade"
ENV PATH=/opt/kubetrade/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 kubetrade \
    && useradd --system --uid 10001 --gid kubetrade --no-create-home --shell /usr/sbin/nologin kubetrade
COPY --from=build /opt/kubetrade /opt/kubetrade
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000 9100
# Only the API serves /health; other components override or ignore it (Kubernetes uses
# its own probes, defined in the chart and in the runner Deployments the operator renders).
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["kubetrade"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
