# syntax=docker/dockerfile:1
# An MLflow tracking server for kdbench: PostgreSQL backend (psycopg 3: what a plain postgresql:// URI means
# with SQLAlchemy 2.1), S3 artifacts (boto3), and MLflow's
# basic-auth app. Build from the repository root:
#   docker build -f docker/mlflow.Dockerfile -t kdbench-mlflow:3.17.2 .
# It listens on 0.0.0.0:5000 *inside* its container network only: docker/compose.yaml publishes it on the
# host's 127.0.0.1:5000 and nowhere else. Needs MLFLOW_FLASK_SERVER_SECRET_KEY, and on first start
# MLFLOW_AUTH_ADMIN_PASSWORD (the admin user's password).
FROM python:3.11-slim

ARG MLFLOW_VERSION=3.17.2
RUN pip install --no-cache-dir "mlflow[auth]==${MLFLOW_VERSION}" "psycopg[binary]" boto3 \
 && useradd --create-home --uid 1000 mlflow \
 && mkdir -p /mlflow /etc/mlflow && chown mlflow /mlflow

COPY docker/mlflow-basic-auth.ini /etc/mlflow/basic_auth.ini
ENV MLFLOW_AUTH_CONFIG_PATH=/etc/mlflow/basic_auth.ini

USER mlflow
WORKDIR /mlflow
VOLUME /mlflow
EXPOSE 5000
ENTRYPOINT ["mlflow", "server"]
# Standalone default: runs and artifacts under /mlflow. compose.yaml replaces these arguments with its
# PostgreSQL backend and MinIO artifact store (keeping --host, --port and --app-name).
CMD ["--host", "0.0.0.0", "--port", "5000", "--app-name", "basic-auth", \
     "--backend-store-uri", "sqlite:////mlflow/mlflow.db", "--artifacts-destination", "/mlflow/artifacts"]
