// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Registry of scoring models and log of the automated decisions they made.
interface IDecisionLog {
    error DecisionNotPartner(address account);
    error DecisionUnknownModel(uint256 modelId);
    error DecisionZeroModelHash();
    error DecisionEmptyBatch();
    error DecisionInvalidMember();
    error DecisionScoreOutOfRange(uint32 scoreBps);
    error DecisionNotRegistrant(uint256 modelId, address registrant, address account);
    error DecisionConsentRequired(bytes32 member, address partner);

    event ModelRegistered(
        uint256 indexed modelId,
        address indexed registrant,
        bytes32 modelHash,
        bytes32 cardHash,
        bytes32 trainingRoot
    );
    /// `reasons` holds the top reasons as one-byte codes, most important first, zero-padded: the low
    /// seven bits are the feature's position in the model plus one, the high bit is set where the
    /// feature pushed the score up. `explanationHash` is a keyed commitment (HMAC under a key derived
    /// from the member's data key) to the full explanation, which is kept off chain, encrypted.
    event DecisionRecorded(
        uint256 indexed decisionId,
        bytes32 indexed member,
        address indexed partner,
        uint256 modelId,
        bytes32 inputRoot,
        uint32 scoreBps,
        bytes32 action,
        bytes32 reasons,
        bytes32 explanationHash
    );

    function registerModel(bytes32 modelHash, bytes32 cardHash, bytes32 trainingRoot) external returns (uint256 modelId);

    /// One decision about one member, as `recordDecisions` takes it (the fields of `DecisionRecorded`).
    struct DecisionInput {
        bytes32 member;
        bytes32 inputRoot;
        uint32 scoreBps;
        bytes32 action;
        bytes32 reasons;
        bytes32 explanationHash;
    }

    function recordDecisions(
        uint256 modelId,
        DecisionInput[] calldata decisions
    ) external returns (uint256 firstDecisionId);
}
