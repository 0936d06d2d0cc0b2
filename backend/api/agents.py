"""The agents a caller may submit jobs to."""
from __future__ import annotations

from apispec.ext.marshmallow import OpenAPIConverter
from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from .auth import require_api_key
from .schemas import AgentListSchema

blp = Blueprint("agents", __name__, url_prefix="/api/ai/agents", description="The enabled agents.")
blp.before_request(require_api_key)

_converter = OpenAPIConverter(openapi_version="3.0.3", schema_name_resolver=lambda schema: None, spec=None)


def _input_json_schema(schema_class) -> dict:
    schema = _converter.schema2jsonschema(schema_class())
    schema["additionalProperties"] = False
    return schema


@blp.route("")
class Agents(MethodView):
    @blp.response(200, AgentListSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    def get(self):
        """List the enabled agents and the JSON schema of each one's input"""
        agents = current_app.extensions["job_service"].agents.values()
        return {
            "agents": [
                {
                    "name": agent.name,
                    "description": agent.description,
                    "time_limit_s": agent.time_limit_s,
                    "input_schema": _input_json_schema(agent.input_schema),
                }
                for agent in sorted(agents, key=lambda a: a.name)
            ]
        }
