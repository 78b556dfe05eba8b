// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IConsortium} from "./interfaces/IConsortium.sol";
import {IConsentRegistry} from "./interfaces/IConsentRegistry.sol";
import {IDecisionLog} from "./interfaces/IDecisionLog.sol";
import {IMemberRegistry} from "./interfaces/IMemberRegistry.sol";

/// @title DecisionLog
/// @notice Models are registered by the hash of the fitted pipeline, its model card and its training
/// data root; every automated decision about a member is then logged against a model with the root of
/// its inputs, its score, the action taken and the hash of its explanation. The decisions themselves
/// live in events (cheap, and complete for an auditor replaying the log); storage keeps counters.
/// Each decision names the partner that made it; only a model's registrant logs decisions against it,
/// and only about active members with valid "profiling" consent towards it.
contract DecisionLog is IDecisionLog {
    struct Model {
        bytes32 modelHash;
        bytes32 cardHash;
        bytes32 trainingRoot;
        address registrant;
        uint64 blockNumber;
    }

    uint32 private constant _MAX_SCORE_BPS = 10_000;

    bytes32 private constant _PROFILING = keccak256("profiling");

    IConsortium private immutable _consortium;
    IMemberRegistry private immutable _registry;
    IConsentRegistry private immutable _consent;
    Model[] private _models;
    uint256 private _decisionCount;

    constructor(address consortium_, address registry_, address consent_) {
        _consortium = IConsortium(consortium_);
        _registry = IMemberRegistry(registry_);
        _consent = IConsentRegistry(consent_);
    }

    modifier onlyPartner() {
        if (!_consortium.isPartner(msg.sender)) revert DecisionNotPartner(msg.sender);
        _;
    }

    /// @notice Register a model; model ids count up from 0.
    /// Requirements:
    /// - the caller is a current partner; `modelHash` is not zero.
    function registerModel(
        bytes32 modelHash,
        bytes32 cardHash,
        bytes32 trainingRoot
    ) external onlyPartner returns (uint256 modelId) {
        if (modelHash == bytes32(0)) revert DecisionZeroModelHash();
        modelId = _models.length;
        _models.push(
            Model({
                modelHash: modelHash,
                cardHash: cardHash,
                trainingRoot: trainingRoot,
                registrant: msg.sender,
                blockNumber: uint64(block.number)
            })
        );
        emit ModelRegistered(modelId, msg.sender, modelHash, cardHash, trainingRoot);
    }

    /// @notice Log a batch of decisions made by model `modelId`, one event per decision; decision ids
    /// count up from 0 across all models, and the first of this batch is returned.
    /// Requirements:
    /// - the caller is a current partner and the model's registrant; the model is registered;
    /// - the batch is not empty; no member is zero; every score is at most 10000 bps;
    /// - every member is enrolled, not erased, and has valid "profiling" consent towards the caller.
    function recordDecisions(
        uint256 modelId,
        DecisionInput[] calldata decisions
    ) external onlyPartner returns (uint256 firstDecisionId) {
        if (modelId >= _models.length) revert DecisionUnknownModel(modelId);
        address registrant = _models[modelId].registrant;
        if (registrant != msg.sender) revert DecisionNotRegistrant(modelId, registrant, msg.sender);
        uint256 n = decisions.length;
        if (n == 0) revert DecisionEmptyBatch();
        firstDecisionId = _decisionCount;
        for (uint256 i = 0; i < n; ++i) {
            _record(firstDecisionId + i, modelId, decisions[i]);
        }
        _decisionCount = firstDecisionId + n;
    }

    function _record(uint256 decisionId, uint256 modelId, DecisionInput calldata d) private {
        if (d.member == bytes32(0)) revert DecisionInvalidMember();
        if (d.scoreBps > _MAX_SCORE_BPS) revert DecisionScoreOutOfRange(d.scoreBps);
        _registry.requireActive(d.member);
        if (!_consent.isValid(d.member, msg.sender, _PROFILING)) {
            revert DecisionConsentRequired(d.member, msg.sender);
        }
        emit DecisionRecorded(
            decisionId,
            d.member,
            msg.sender,
            modelId,
            d.inputRoot,
            d.scoreBps,
            d.action,
            d.reasons,
            d.explanationHash
        );
    }

    /// @notice A registered model.
    /// Requirements:
    /// - `modelId` is below `modelCount`.
    function model(
        uint256 modelId
    )
        external
        view
        returns (bytes32 modelHash, bytes32 cardHash, bytes32 trainingRoot, address registrant, uint64 blockNumber)
    {
        if (modelId >= _models.length) revert DecisionUnknownModel(modelId);
        Model storage m = _models[modelId];
        return (m.modelHash, m.cardHash, m.trainingRoot, m.registrant, m.blockNumber);
    }

    function modelCount() external view returns (uint256) {
        return _models.length;
    }

    function decisionCount() external view returns (uint256) {
        return _decisionCount;
    }

    function consortium() external view returns (address) {
        return address(_consortium);
    }
}
