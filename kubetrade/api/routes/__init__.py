"""The API's endpoints, one ``APIRouter`` per area; ``create_app`` includes them all."""
