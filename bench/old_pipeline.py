"""The pipeline token_sync replaces, for comparison: the BigQuery Python client pulls the
day into pandas, and DataFrame.to_sql appends it to raw_tokens (as the Airflow DAG did).

    python bench/old_pipeline.py --endpoint http://127.0.0.1:9070 --host /tmp/pg --port 5432 --dbname db
"""

import argparse
import time

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from sqlalchemy import create_engine

QUERY = ("SELECT address, symbol, name, decimals, total_supply, block_timestamp, block_number, block_hash "
         "FROM `bigquery-public-data.crypto_ethereum.tokens` WHERE DATE(block_timestamp) = @day")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dbname", required=True)
    parser.add_argument("--day", default="2026-11-20")
    args = parser.parse_args()

    started = time.monotonic()
    client = bigquery.Client(project="billing", credentials=AnonymousCredentials(),
                             client_options=ClientOptions(api_endpoint=args.endpoint))
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("day", "DATE", args.day)])
    frame = client.query_and_wait(QUERY, job_config=config).to_dataframe(create_bqstorage_client=False)
    engine = create_engine(f"postgresql+psycopg2://postgres@/{args.dbname}?host={args.host}&port={args.port}")
    frame.to_sql("raw_tokens", engine, if_exists="append", index=False)
    print(f"{len(frame)} rows in {time.monotonic() - started:.3f} s")


if __name__ == "__main__":
    main()
